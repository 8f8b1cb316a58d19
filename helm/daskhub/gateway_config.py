# Dask Gateway configuration of a HelioCloud Daskhub.
#
# The daskhub chart runs this file as `dask-gateway.gateway.extraConfig`, at the end of the
# chart's own gateway config: `c` (the traitlets config) is already defined and the backend is
# set. Instance-specific numbers come from the HELIOCLOUD_GATEWAY_SETTINGS environment variable
# (JSON, set on the gateway pod from instance.yaml), so this same file runs unchanged in the
# cluster and in the tests and sandbox, where only the backend is swapped for local processes.
#
# What researchers get, as in the SDO notebook:
#     options = gateway.cluster_options()
#     options.worker_cores = 4        # 1 .. dask.worker_cores_max
#     options.worker_memory = 4       # GiB, 1 .. dask.worker_memory_gib_max
#     options.profile = "gpu-xlarge"  # a worker profile of dask.worker_profiles (default cpu);
#                                     # GPU profiles give each worker one NVIDIA GPU and the GPU image
#     cluster = gateway.new_cluster(options)
import json
import os

from dask_gateway_server.options import Float, Integer, Options, Select, String

HELIOCLOUD = json.loads(os.environ["HELIOCLOUD_GATEWAY_SETTINGS"])
GIB = 2**30

# Pod placement only means something on Kubernetes; the local backend runs plain processes and
# its cluster config has no pod fields.
ON_KUBERNETES = str(c.DaskGateway.backend_class).endswith("KubeBackend")  # noqa: F821 (c comes from the chart)

# distributed 2026 dropped the `dask-scheduler` / `dask-worker` scripts that dask-gateway-server
# still defaults to; `dask scheduler` / `dask worker` exist since distributed 2022.10.
c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]  # noqa: F821
c.ClusterConfig.worker_cmd = ["dask", "worker"]  # noqa: F821
# An abandoned cluster (kernel died, laptop closed) stops costing money after this long.
c.ClusterConfig.idle_timeout = float(HELIOCLOUD["idle_timeout_seconds"])  # noqa: F821
# Caps what `cluster.adapt(maximum=...)` or `cluster.scale(n)` can reach.
c.ClusterConfig.cluster_max_workers = int(HELIOCLOUD["max_workers_per_cluster"])  # noqa: F821


def worker_resources(options):
    """Cores, threads and memory of each worker, on every backend."""
    return {
        "worker_cores": options.worker_cores,
        "worker_threads": options.worker_cores,
        "worker_memory": int(options.worker_memory * GIB),
    }


def home_directory(username):
    """The hub's name for a user's home folder: KubeSpawner's `escape` slug scheme (set in the
    chart values), i.e. every character but a-z and 0-9 as -XX hex bytes, lower-cased."""
    safe = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(c if c in safe else "".join(f"-{b:X}" for b in c.encode()) for c in username).lower()


def kubernetes_pods(options, username):
    """Where scheduler and worker pods run and what they carry: schedulers on the on-demand core
    nodes, workers on the (spot) worker groups, GPU workers with one `nvidia.com/gpu` each."""
    placement = HELIOCLOUD["placement"]
    hardware = HELIOCLOUD["worker_profiles"][options.profile]
    worker_pod = {
        **placement[hardware],
        "serviceAccountName": HELIOCLOUD["service_account"],
    }
    worker_container = {"env": [{"name": "HELIOCLOUD_USER", "value": username}]}
    if hardware == "gpu":
        worker_container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    if HELIOCLOUD["mount_home_in_workers"]:
        worker_pod["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": HELIOCLOUD["home_claim"]}}]
        worker_container["volumeMounts"] = [
            {"name": "home", "mountPath": "/home/jovyan", "subPath": home_directory(username)}]
    return {
        "image": worker_image(options, hardware),
        "worker_cores_limit": options.worker_cores,
        "worker_memory_limit": int(options.worker_memory * GIB),
        "worker_extra_pod_config": worker_pod,
        "worker_extra_container_config": worker_container,
        "scheduler_extra_pod_config": {
            **placement["scheduler"],
            "serviceAccountName": HELIOCLOUD["service_account"],
        },
    }


def worker_image(options, hardware):
    """The image the user chose, except that GPU workers asked for with the default (CPU) image
    get the GPU image: a GPU with nothing that can use it helps no one."""
    if hardware == "gpu" and options.image == HELIOCLOUD["image"]:
        return HELIOCLOUD["gpu_image"]
    return options.image


def cluster_options_handler(options, user):
    """Turn the options a user chose (already range-checked) into cluster configuration."""
    config = worker_resources(options)
    if ON_KUBERNETES:
        config.update(kubernetes_pods(options, user.name))
    return config


c.Backend.cluster_options = Options(  # noqa: F821
    Integer("worker_cores", default=1, min=1, max=int(HELIOCLOUD["worker_cores_max"]), label="Worker cores"),
    Float("worker_memory", default=2, min=1, max=float(HELIOCLOUD["worker_memory_gib_max"]),
          label="Worker memory (GiB)"),
    Select("profile", list(HELIOCLOUD["worker_profiles"]), default=next(iter(HELIOCLOUD["worker_profiles"])),
           label="Worker profile (GPU profiles: one NVIDIA GPU each)"),
    # Notebooks pass their own image (DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE) so that the client,
    # the scheduler and the workers run the same library versions.
    String("image", default=HELIOCLOUD["image"], label="Image"),
    handler=cluster_options_handler,
)
