"""`heliocloud doctor` against a fake Kubernetes API server (a local HTTP server that answers the
list calls with API-shaped JSON, filtering pods by label selector as the real server does)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from heliocloud.commands import doctor
from heliocloud.config import InstanceConfig, validate

pytestmark = pytest.mark.unit
SETTINGS = InstanceConfig(validate({"instance": {"name": "t-site"}})).daskhub


def node(name, group, ready=True):
    return {"metadata": {"name": name, "labels": {"heliocloud/node-group": group}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name, labels, ready=True):
    return {"metadata": {"name": name, "namespace": "daskhub", "labels": labels},
            "spec": {"containers": [{"name": name.split("-")[0], "image": "example/image:1"}]},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def workload(name, image, **status):
    """A Deployment/DaemonSet as the API returns it (the client requires selector and template)."""
    labels = {"app.kubernetes.io/name": name}
    return {"metadata": {"name": name, "namespace": "kube-system", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}}},
            "status": status}


HEALTHY = {
    "nodes": [node("ip-10-20-0-5", "core"), node("ip-10-20-16-9", "dask-worker")],
    "pods": [
        pod("hub-7d9", {"component": "hub"}), pod("proxy-5c4", {"component": "proxy"}),
        pod("api-daskhub-dask-gateway-1", {"app.kubernetes.io/component": "gateway"}),
        pod("controller-daskhub-dask-gateway-1", {"app.kubernetes.io/component": "controller"}),
        pod("traefik-daskhub-dask-gateway-1", {"app.kubernetes.io/component": "traefik"}),
    ],
    "services": [{"metadata": {"name": "hub-public", "namespace": "daskhub"},
                  "status": {"loadBalancer": {"ingress": [{"hostname": "a1b2.elb.us-east-1.amazonaws.com"}]}}}],
    "deployments": [workload("cluster-autoscaler-aws-cluster-autoscaler",
                             "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.0", readyReplicas=1, replicas=1)],
    "daemonsets": [
        workload(n, f"example/{n}:1", desiredNumberScheduled=d, numberReady=d, currentNumberScheduled=d,
                 numberMisscheduled=0)
        for n, d in [("ebs-csi-node", 2), ("efs-csi-node", 2), ("nvidia-device-plugin", 0)]
    ],
}


def _matches(labels: dict, selector: str | None) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class FakeApiServer:
    """Serves GET list calls of the Kubernetes API from a dict of objects."""

    ROUTES = {
        "/api/v1/nodes": ("NodeList", "nodes"),
        "/api/v1/namespaces/daskhub/pods": ("PodList", "pods"),
        "/api/v1/namespaces/daskhub/services": ("ServiceList", "services"),
        "/apis/apps/v1/namespaces/kube-system/deployments": ("DeploymentList", "deployments"),
        "/apis/apps/v1/namespaces/kube-system/daemonsets": ("DaemonSetList", "daemonsets"),
    }

    def __init__(self, state: dict):
        self.state, self.requests = state, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                outer.requests.append(url.path)
                if url.path not in outer.ROUTES:
                    self.send_response(404)
                    self.end_headers()
                    return
                kind, key = outer.ROUTES[url.path]
                selector = parse_qs(url.query).get("labelSelector", [None])[0]
                items = [i for i in outer.state[key] if _matches(i["metadata"].get("labels", {}), selector)]
                body = json.dumps({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": items}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                """Keep the test output free of access-log lines."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def checks_against(state: dict) -> dict[str, doctor.Check]:
    with FakeApiServer(state) as api:
        configuration = client.Configuration()
        configuration.host = api.url
        with client.ApiClient(configuration) as api_client:
            return {c.name: c for c in doctor.run_checks(api_client, SETTINGS)}


def test_a_healthy_idle_hub_passes_every_check():
    checks = checks_against(HEALTHY)
    assert {c.status for c in checks.values()} == {doctor.OK}
    assert checks["nodes: core"].detail == "1/1 ready (min 1, max 3)"
    assert checks["nodes: user-gpu"].detail == "scaled to zero (max 2)"
    assert checks["hub load balancer"].detail == "a1b2.elb.us-east-1.amazonaws.com"
    assert checks["NVIDIA device plugin"].detail == "nvidia-device-plugin: 0/0 ready"


def test_failures_are_reported_per_check():
    broken = json.loads(json.dumps(HEALTHY))
    broken["nodes"] = [node("ip-10-20-0-5", "core", ready=False)]
    broken["pods"][0] = pod("hub-7d9", {"component": "hub"}, ready=False)
    broken["pods"] = [p for p in broken["pods"] if p["metadata"]["labels"].get("component") != "proxy"]
    broken["deployments"] = []
    broken["services"][0]["status"] = {"loadBalancer": {}}
    checks = checks_against(broken)
    failed = {name for name, c in checks.items() if c.status == doctor.FAIL}
    assert failed == {"nodes: core", "pod: hub", "pod: proxy", "cluster autoscaler", "hub load balancer"}
    assert "not ready: hub-7d9" in checks["pod: hub"].detail
    assert "component=proxy" in checks["pod: proxy"].detail


def test_a_worker_node_still_starting_is_a_warning():
    starting = json.loads(json.dumps(HEALTHY))
    starting["nodes"].append(node("ip-10-20-17-1", "dask-worker", ready=False))
    assert checks_against(starting)["nodes: dask-worker"].status == doctor.WARN


def test_the_command_prints_a_table_and_exits_by_result(tmp_path, capsys):
    with FakeApiServer(HEALTHY) as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "admin"}}],
            "users": [{"name": "admin", "user": {"token": "not-a-real-token"}}],
        }))
        from heliocloud.cli import main

        assert main(["doctor", "--kubeconfig", str(kubeconfig)]) == 0
        out = capsys.readouterr().out
        assert "all checks passed" in out and "nodes: dask-worker-gpu" in out
        api.state = {**HEALTHY, "pods": []}
        assert main(["doctor", "--kubeconfig", str(kubeconfig)]) == 1
        assert "5 check(s) failed" in capsys.readouterr().out
