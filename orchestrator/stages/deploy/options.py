"""What a rendered deployment is made of: the user's choices, the GPU topology, container paths, names.

Everything here is plain data computed from the recipe and the `deploy` options, so the
compose and Kubernetes renderers agree on names, mounts and GPU counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from orchestrator.errors import UserError


class Target(str, Enum):
    compose = "compose"
    kubernetes = "kubernetes"


# Where things are inside the container. The workdir (checkpoint-hf/, engine/) is mounted
# read-only at CONTAINER_WORKDIR, so serve_argv(recipe, CONTAINER_WORKDIR) yields in-container paths.
CONTAINER_WORKDIR = PurePosixPath("/workdir")
CONFIG_DIR = PurePosixPath("/etc/orchestrator")  # llm-api options and launch scripts (ConfigMap / compose configs)
SSH_DIR = PurePosixPath("/etc/orchestrator-ssh")  # MPI's SSH keys (a Secret / the host's ~/.ssh), read-only
OPTIONS_FILE = "llm-api-options.yaml"
LEADER_SCRIPT = "leader.sh"
WORKER_SCRIPT = "worker.sh"
HOSTFILE = "openmpi-hostfile"
# The port sshd listens on for mpirun inside the containers; NVIDIA's DGX Spark TRT-LLM playbook
# (dgx-spark-playbooks nvidia/trt-llm/assets/trtllm-mn-entrypoint.sh) uses 2233 so it never meets the host's sshd.
SSH_PORT = 2233


@dataclass(frozen=True)
class DeployOptions:
    """The `orchestrator deploy` choices that are not in the recipe."""

    target: Target
    nodes: int | None = None  # None: the recipe's `nodes`
    namespace: str | None = None  # Kubernetes namespace; None leaves it to kubectl's context
    model_path: Path | None = None  # host path of the workdir on every node; default: the recipe's workdir
    model_pvc: str | None = None  # Kubernetes: a PersistentVolumeClaim holding the workdir instead of a hostPath
    hf_secret: str = "hf-token"  # Kubernetes Secret with key HF_TOKEN (created by the user; never rendered)
    shm_size_gb: int = 16
    hosts: tuple[str, ...] = ()  # compose, nodes > 1: the nodes' addresses on the fast link, leader first
    nics: tuple[str, ...] = ()  # network interfaces for NCCL/UCX/MPI; default from the platform's cluster facts


@dataclass(frozen=True)
class Topology:
    """How the recipe's tp x pp ranks sit on machines."""

    world_size: int
    nodes: int

    @property
    def gpus_per_node(self) -> int:
        return self.world_size // self.nodes

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


def topology(recipe, options: DeployOptions) -> Topology:
    """The ranks per node; --nodes overrides the recipe and is checked by the same rules."""
    nodes = options.nodes if options.nodes is not None else recipe.nodes
    world = recipe.checkpoint.world_size
    plat = recipe.platform_info
    if not plat.has_gpu:
        from orchestrator.platforms import PLATFORMS

        gpu_platforms = ", ".join(name for name, row in PLATFORMS.items() if row.has_gpu)
        raise UserError(f"platform={plat.name!r}: TensorRT-LLM serving needs an NVIDIA GPU platform",
                        hint=f"deploy a recipe for one of: {gpu_platforms}")
    if nodes < 1 or world % nodes != 0:
        raise UserError(f"--nodes {nodes}: checkpoint.tp x pp = {world} ranks cannot be spread evenly over "
                        f"{nodes} nodes", hint="use a --nodes that divides tp x pp")
    if world // nodes > plat.max_gpus:
        raise UserError(f"--nodes {nodes}: {world // nodes} GPUs per node, but a {plat.name} has {plat.max_gpus}",
                        hint=f"use --nodes {-(-world // plat.max_gpus)} or more")
    return Topology(world_size=world, nodes=nodes)


_INVALID = re.compile(r"[^a-z0-9-]+")


def resource_name(recipe_name: str) -> str:
    """A Kubernetes-safe name (DNS-1035 label) from the recipe name.

    40 characters at most: a LeaderWorkerSet's StatefulSet adds `-<group>-<worker>` to
    pod names and a 10-character revision hash to its own, and both must stay within 63.
    """
    name = _INVALID.sub("-", recipe_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"llm-{name}"
    return name[:40].rstrip("-")
