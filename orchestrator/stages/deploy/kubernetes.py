"""Kubernetes manifests for a recipe: a Deployment on one node, a LeaderWorkerSet across several.

Both serve the OpenAI API behind a ClusterIP Service `<name>-api`, take the llm-api YAML
(and, across nodes, the launch scripts) from a ConfigMap, mount the workdir read-only from
a hostPath or a PersistentVolumeClaim, and read HF_TOKEN only from a Secret reference.
The LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, kubernetes-sigs/lws) gives each group one
leader pod and nodes-1 worker pods with stable DNS names; the leader runs mpirun over SSH
(keys from a Secret) as in launch.py. Shape after lws docs/examples/vllm/GPU/lws.yaml and
docs/examples/tensorrt-llm/lws.yaml, with their client Service's selector on the leader.
"""

from __future__ import annotations

import math
from typing import Any

from orchestrator.stages.deploy.launch import container_serve_argv, leader_script, mpirun_argv, worker_script
from orchestrator.stages.deploy.network import link_env
from orchestrator.stages.deploy.options import (
    CONFIG_DIR,
    CONTAINER_WORKDIR,
    LEADER_SCRIPT,
    OPTIONS_FILE,
    SSH_DIR,
    SSH_PORT,
    WORKER_SCRIPT,
)
from orchestrator.stages.deploy.shared import Deployment, dump_yaml

HEALTH_PATH = "/health"  # trtllm-serve: 200 once the model is loaded (reference/trtllm-cli.md, HTTP endpoints)
PROBE_PERIOD_S = 10
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


def _metadata(dep: Deployment, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if dep.options.namespace:
        meta["namespace"] = dep.options.namespace
    meta["labels"] = dict(labels or dep.labels)
    return meta


def _http_probe(period_s: int, timeout_s: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": period_s,
            "timeoutSeconds": timeout_s, "failureThreshold": failures}


def _serving_probes(dep: Deployment) -> dict[str, Any]:
    """Startup covers the model load (serve.health_timeout_s, minutes for big models); liveness then
    restarts a server that stops answering for 2.5 minutes, readiness takes it out of the Service."""
    startup_failures = max(1, math.ceil(dep.startup_timeout_s / PROBE_PERIOD_S))
    return {
        "startupProbe": _http_probe(PROBE_PERIOD_S, 5, startup_failures),
        "readinessProbe": _http_probe(PROBE_PERIOD_S, 5, 3),
        "livenessProbe": _http_probe(30, 10, 5),
    }


def _model_volume(dep: Deployment) -> dict[str, Any]:
    if dep.options.model_pvc:
        return {"name": "model", "persistentVolumeClaim": {"claimName": dep.options.model_pvc, "readOnly": True}}
    return {"name": "model", "hostPath": {"path": str(dep.model_host_path), "type": "Directory"}}


def _hf_token_env(dep: Deployment) -> dict[str, Any]:
    # optional: a model served from local files needs no token, and the pod must start without the Secret.
    return {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": dep.options.hf_secret, "key": "HF_TOKEN",
                                                                "optional": True}}}


def _container(dep: Deployment, name: str, args: list[str], gpus: int, *, with_config: bool,
               with_ssh: bool) -> dict[str, Any]:
    mounts = [{"name": "model", "mountPath": str(CONTAINER_WORKDIR), "readOnly": True},
              {"name": "dshm", "mountPath": "/dev/shm"}]
    if with_config:
        mounts.append({"name": "config", "mountPath": str(CONFIG_DIR), "readOnly": True})
    if with_ssh:
        mounts.append({"name": "ssh", "mountPath": str(SSH_DIR), "readOnly": True})
    security: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if not with_ssh:
        # trtllm-serve alone needs no capability; sshd (multi-node) needs setuid/chroot, so it keeps the defaults.
        security["capabilities"] = {"drop": ["ALL"]}
    return {
        "name": name,
        "image": dep.image,
        # args, not command: the image's entrypoint (NVIDIA's CUDA compat setup) still runs first.
        "args": args,
        "env": [_hf_token_env(dep)] + [{"name": k, "value": v} for k, v in link_env(dep.options.nics).items()],
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
        "volumeMounts": mounts,
        "securityContext": security,
    }


def _pod_spec(dep: Deployment, container: dict[str, Any], *, config_map: str | None,
              ssh_secret: str | None) -> dict[str, Any]:
    volumes = [_model_volume(dep),
               {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{dep.options.shm_size_gb}Gi"}}]
    if config_map:
        volumes.append({"name": "config", "configMap": {"name": config_map}})
    if ssh_secret:
        volumes.append({"name": "ssh", "secret": {"secretName": ssh_secret, "defaultMode": 0o400}})
    return {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }


def _api_service(dep: Deployment, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(dep, f"{dep.name}-api"),
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": dep.recipe.serve.port, "targetPort": "http", "protocol": "TCP"}]},
    }


def _config_map(dep: Deployment, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(dep, f"{dep.name}-config"), "data": data}


def manifests(dep: Deployment) -> dict[str, dict[str, Any]]:
    """{file name: Kubernetes object} for the recipe's topology."""
    data = {OPTIONS_FILE: dep.llm_api_yaml} if dep.llm_api_yaml else {}
    if dep.topology.multi_node:
        return _multi_node(dep, data)
    objects: dict[str, dict[str, Any]] = {}
    config_map = f"{dep.name}-config" if data else None
    if data:
        objects["configmap.yaml"] = _config_map(dep, data)
    container = _container(dep, "trtllm-serve", container_serve_argv(dep.recipe, "0.0.0.0"),
                           dep.topology.world_size, with_config=bool(data), with_ssh=False)
    container["ports"] = [{"name": "http", "containerPort": dep.recipe.serve.port, "protocol": "TCP"}]
    container.update(_serving_probes(dep))
    selector = {"app.kubernetes.io/name": dep.name, "app.kubernetes.io/component": "trtllm-serve"}
    objects["deployment.yaml"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(dep, dep.name),
        "spec": {
            "replicas": 1,
            # A new pod cannot get the GPUs while the old one holds them: replace, don't roll.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": dict(dep.labels)},
                         "spec": _pod_spec(dep, container, config_map=config_map, ssh_secret=None)},
        },
    }
    objects["service.yaml"] = _api_service(dep, selector)
    return objects


def ssh_secret_name(dep: Deployment) -> str:
    return f"{dep.name}-ssh"


def _multi_node(dep: Deployment, data: dict[str, str]) -> dict[str, dict[str, Any]]:
    topo, recipe = dep.topology, dep.recipe
    hostfile = "/tmp/openmpi-hostfile"
    launcher = mpirun_argv(container_serve_argv(recipe, "0.0.0.0"), topo, hostfile,
                           tuple(link_env(dep.options.nics)))
    data = {**data,
            LEADER_SCRIPT: leader_script(recipe.name, launcher, hostfile, topo, hostfile_from_lws=True),
            WORKER_SCRIPT: worker_script(recipe.name)}
    config_map, secret = f"{dep.name}-config", ssh_secret_name(dep)
    ssh_port = {"name": "ssh", "containerPort": SSH_PORT, "protocol": "TCP"}

    leader = _container(dep, "leader", ["bash", str(CONFIG_DIR / LEADER_SCRIPT)], topo.gpus_per_node,
                        with_config=True, with_ssh=True)
    leader["ports"] = [{"name": "http", "containerPort": recipe.serve.port, "protocol": "TCP"}, ssh_port]
    leader.update(_serving_probes(dep))
    worker = _container(dep, "worker", ["bash", str(CONFIG_DIR / WORKER_SCRIPT)], topo.gpus_per_node,
                        with_config=True, with_ssh=True)
    worker["ports"] = [ssh_port]
    worker["readinessProbe"] = {"tcpSocket": {"port": "ssh"}, "periodSeconds": PROBE_PERIOD_S}

    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": _metadata(dep, dep.name),
        "spec": {
            "replicas": 1,
            # Workers start with the leader, which waits for their sshd (LeaderReady would deadlock).
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": topo.nodes,
                # One MPI world: a lost rank cannot rejoin, so the whole group restarts.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {
                    "metadata": {"labels": {**dep.labels, "role": "leader"}},
                    "spec": _pod_spec(dep, leader, config_map=config_map, ssh_secret=secret),
                },
                "workerTemplate": {
                    "metadata": {"labels": {**dep.labels, "role": "worker"}},
                    "spec": _pod_spec(dep, worker, config_map=config_map, ssh_secret=secret),
                },
            },
        },
    }
    return {
        "configmap.yaml": _config_map(dep, data),
        "leaderworkerset.yaml": lws,
        # LWS names its own headless Service after the set, hence `-api` for the client one.
        "service.yaml": _api_service(dep, {LWS_NAME_LABEL: dep.name, LWS_WORKER_INDEX_LABEL: "0"}),
    }


def render_kubernetes(dep: Deployment) -> dict[str, str]:
    """{file name: YAML text}; `kubectl apply -f DIR` applies them in name order (ConfigMap first)."""
    header = dep.header_comment("kubectl apply -f <this directory>")
    return {name: header + dump_yaml(obj) for name, obj in manifests(dep).items()}
