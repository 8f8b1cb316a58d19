"""`heliocloud doctor` against a fake Kubernetes API server (a local HTTP server that answers the
list calls with API-shaped JSON, filtering pods by label selector as the real server does)."""
from __future__ import annotations

import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from heliocloud import daskhub
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


def helm_release_secret(release, chart, version, app_version, config, revision=2):
    """A release revision as Helm 3/4 stores it: Secret data `release` = base64(gzip(JSON))."""
    body = json.dumps({"name": release, "version": revision, "config": config,
                       "chart": {"metadata": {"name": chart, "version": version, "appVersion": app_version}}})
    stored = base64.b64encode(gzip.compress(body.encode()))
    return {"metadata": {"name": f"sh.helm.release.v1.{release}.v{revision}", "namespace": "daskhub",
                         "labels": {"owner": "helm", "name": release, "status": "deployed", "version": str(revision)}},
            "type": "helm.sh/release.v1", "data": {"release": base64.b64encode(stored).decode()}}


SCOPE = "access:services!service=dask-gateway"
HUB_CONFIG = {"hub": {"loadRoles": {"user": {"scopes": ["self", SCOPE]}},
                      "config": {"Spawner": {"server_token_scopes": ["users:activity!user", SCOPE]}}},
              "singleuser": {"image": daskhub.image_ref(SETTINGS, "cpu", "111122223333.dkr.ecr.us-east-1.amazonaws.com/x")}}
GATEWAY_CONFIG = {"gateway": {"auth": {"jupyterhub": {"jupyterhubServiceName": "dask-gateway"}}}}

HEALTHY = {
    "daskclusters": [],
    "secrets": [
        helm_release_secret("daskhub", "jupyterhub", "4.4.0", "5.5.4", HUB_CONFIG),
        helm_release_secret("dask-gateway", "dask-gateway", "2026.3.0", "2026.3.0", GATEWAY_CONFIG),
    ],
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
        "/api/v1/namespaces/daskhub/secrets": ("SecretList", "secrets"),
        "/apis/gateway.dask.org/v1alpha1/namespaces/daskhub/daskclusters": ("DaskClusterList", "daskclusters"),
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
    assert checks["release: daskhub"].detail == "jupyterhub 4.4.0 (app 5.5.4)"
    assert checks["image versions"].detail.startswith("dask-gateway 2026.3.0 in the images = 2026.3.0 on the server")


def test_admins_see_every_users_dask_clusters():
    owned = [{"metadata": {"name": f"c{i}", "namespace": "daskhub"}, "spec": {"username": user}}
             for i, user in enumerate(["bob@site.edu", "alice@site.edu", "bob@site.edu"])]
    assert checks_against({**HEALTHY, "daskclusters": owned})["dask clusters"].detail == \
        "3: alice@site.edu (1), bob@site.edu (2)"
    assert checks_against(HEALTHY)["dask clusters"].detail == "none running"


def test_a_hub_still_on_the_daskhub_chart_fails_the_release_check():
    old = {**HEALTHY, "secrets": [helm_release_secret("daskhub", "daskhub", "2024.1.1", "jh3.2.1-dg2024.1.0", {})]}
    checks = checks_against(old)
    assert checks["release: daskhub"].status == doctor.FAIL
    assert "instance.yaml pins jupyterhub 4.4.0" in checks["release: daskhub"].detail
    assert checks["release: dask-gateway"].status == doctor.FAIL
    assert checks["image versions"].status == doctor.FAIL


@pytest.mark.parametrize("hub_config,gateway_config,message", [
    (HUB_CONFIG, {"gateway": {"auth": {"jupyterhub": {}}}}, "the gateway accepts any hub token"),
    ({**HUB_CONFIG, "hub": {"loadRoles": {"user": {"scopes": ["self"]}}}}, GATEWAY_CONFIG,
     "missing from users' role, server tokens"),
])
def test_gateway_scopes_missing_on_either_side_fail(hub_config, gateway_config, message):
    state = {**HEALTHY, "secrets": [helm_release_secret("daskhub", "jupyterhub", "4.4.0", "5.5.4", hub_config),
                                    helm_release_secret("dask-gateway", "dask-gateway", "2026.3.0", "2026.3.0",
                                                        gateway_config)]}
    check = checks_against(state)["gateway hub scopes"]
    assert check.status == doctor.FAIL and message in check.detail


def test_a_gateway_newer_than_the_images_client_fails():
    state = {**HEALTHY, "secrets": [HEALTHY["secrets"][0], helm_release_secret(
        "dask-gateway", "dask-gateway", "2026.3.0", "2026.9.0", GATEWAY_CONFIG)]}
    check = checks_against(state)["image versions"]
    assert check.status == doctor.FAIL and "the gateway runs 2026.9.0" in check.detail


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
