"""A docker compose file for a recipe: one trtllm-serve service, or a leader and a worker per node.

Single node: the server listens on all interfaces inside the container and compose
publishes its port on `serve.host` only (127.0.0.1 by default). Several nodes: the
containers use the host network, as NVIDIA's DGX Spark playbook does, so NCCL and MPI
reach the ConnectX-7 link; then `serve.host` is trtllm-serve's own bind address.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UserError
from orchestrator.stages.deploy.launch import container_serve_argv, leader_script, mpirun_argv, worker_script
from orchestrator.stages.deploy.network import cluster_interfaces, link_env, rdma_device
from orchestrator.stages.deploy.options import (
    CONFIG_DIR,
    CONTAINER_WORKDIR,
    HOSTFILE,
    LEADER_SCRIPT,
    OPTIONS_FILE,
    SSH_DIR,
    WORKER_SCRIPT,
)
from orchestrator.stages.deploy.shared import Deployment, dump_yaml

# Same limits as NVIDIA's TRT-LLM container instructions (docker run --ulimit memlock=-1 --ulimit stack=67108864).
_ULIMITS = {"memlock": {"soft": -1, "hard": -1}, "stack": 67108864}


def _healthcheck(port: int, start_period_s: int) -> dict[str, Any]:
    # python3 is in every TRT-LLM image; curl need not be.
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5)"
    return {"test": ["CMD", "python3", "-c", probe], "interval": "30s", "timeout": "10s", "retries": 3,
            "start_period": f"{start_period_s}s", "start_interval": "10s"}


def _gpus(recipe, count: int) -> dict[str, Any]:
    device: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
    if isinstance(recipe.serve.gpus, list):
        device["device_ids"] = [str(gpu) for gpu in recipe.serve.gpus]
    else:
        device["count"] = count
    return {"resources": {"reservations": {"devices": [device]}}}


def _base_service(dep: Deployment) -> dict[str, Any]:
    return {
        "image": dep.image,
        "volumes": [{"type": "bind", "source": str(dep.model_host_path), "target": str(CONTAINER_WORKDIR),
                     "read_only": True}],
        # Passed through from the shell that runs `docker compose up`; never written here.
        "environment": ["HF_TOKEN"],
        "shm_size": f"{dep.options.shm_size_gb}gb",
        "ulimits": dict(_ULIMITS),
        "security_opt": ["no-new-privileges:true"],
        "labels": dict(dep.labels),
        "deploy": _gpus(dep.recipe, dep.topology.gpus_per_node),
    }


def _config_key(file_name: str) -> str:
    return file_name.replace(".", "_").replace("-", "_")


def _configs(names: list[str]) -> list[dict[str, str]]:
    """Compose `configs` mounts (read-only files) of the files written beside compose.yaml."""
    return [{"source": _config_key(name), "target": str(CONFIG_DIR / name)} for name in names]


def render_compose(dep: Deployment) -> dict[str, str]:
    """{file name: content} for the compose target."""
    files: dict[str, str] = {}
    if dep.llm_api_yaml:
        files[OPTIONS_FILE] = dep.llm_api_yaml
    if dep.topology.multi_node:
        services, extra_files = _multi_node_services(dep)
        files.update(extra_files)
    else:
        services = {"trtllm-serve": _single_node_service(dep)}
    compose: dict[str, Any] = {
        "name": dep.name,
        "x-orchestrator": dep.provenance,
        "services": services,
    }
    if files:  # every file but compose.yaml is mounted into a container
        compose["configs"] = {_config_key(name): {"file": f"./{name}"} for name in files}
    header = dep.header_comment(
        "docker compose up -d" if not dep.topology.multi_node
        else "leader node: docker compose --profile leader up -d; each other node: "
             "docker compose --profile worker up -d")
    files["compose.yaml"] = header + dump_yaml(compose)
    return files


def _single_node_service(dep: Deployment) -> dict[str, Any]:
    serve = dep.recipe.serve
    service = _base_service(dep)
    service["command"] = container_serve_argv(dep.recipe, "0.0.0.0")
    service["ports"] = [{"target": serve.port, "published": str(serve.port), "host_ip": serve.host,
                         "protocol": "tcp"}]
    # The single-node server needs no privilege at all; the multi-node one runs sshd.
    service["cap_drop"] = ["ALL"]
    if dep.llm_api_yaml:
        service["configs"] = _configs([OPTIONS_FILE])
    service["healthcheck"] = _healthcheck(serve.port, dep.startup_timeout_s)
    service["restart"] = "unless-stopped"
    return service


def _multi_node_services(dep: Deployment) -> tuple[dict[str, Any], dict[str, str]]:
    recipe, topo, options = dep.recipe, dep.topology, dep.options
    if len(options.hosts) != topo.nodes:
        raise UserError(f"--hosts: {topo.nodes} nodes need {topo.nodes} addresses (leader first), "
                        f"got {len(options.hosts)}",
                        hint="give the nodes' addresses on the fast link, e.g. --hosts 192.168.100.10,192.168.100.11")
    interfaces = cluster_interfaces(recipe.platform.value, options.nics)
    env = link_env(interfaces)
    hostfile = str(CONFIG_DIR / HOSTFILE)
    launcher = mpirun_argv(container_serve_argv(recipe, recipe.serve.host), topo, hostfile, tuple(env))
    files = {
        HOSTFILE: "".join(f"{host} slots={topo.gpus_per_node}\n" for host in options.hosts),
        LEADER_SCRIPT: leader_script(recipe.name, launcher, hostfile, topo, hostfile_from_lws=False),
        WORKER_SCRIPT: worker_script(recipe.name),
    }
    services = {}
    for role, script in (("leader", LEADER_SCRIPT), ("worker", WORKER_SCRIPT)):
        service = _base_service(dep)
        service["profiles"] = [role]
        service["command"] = ["bash", str(CONFIG_DIR / script)]
        service["network_mode"] = "host"
        service["environment"] = service["environment"] + [f"{k}={v}" for k, v in env.items()]
        # The user's keys, already exchanged between the nodes (connect-two-sparks playbook, step 4).
        service["volumes"].append({"type": "bind", "source": "${HOME}/.ssh", "target": str(SSH_DIR),
                                   "read_only": True})
        device = rdma_device(recipe.platform.value)
        if device:
            service["devices"] = [f"{device}:{device}"]
        names = [script]
        if role == "leader":  # only the leader runs mpirun and trtllm-serve
            names += [HOSTFILE] + ([OPTIONS_FILE] if dep.llm_api_yaml else [])
            service["healthcheck"] = _healthcheck(recipe.serve.port, dep.startup_timeout_s)
        service["configs"] = _configs(names)
        service["restart"] = "on-failure"
        services[f"trtllm-{role}"] = service
    return services, files
