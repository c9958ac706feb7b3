"""The commands a deployed container runs: trtllm-serve, and for several nodes the MPI launcher around it.

Multi-node serving follows TensorRT-LLM's own route: every rank joins one MPI world, and
`trtllm-llmapi-launch` runs trtllm-serve on rank 0 while the other ranks serve as LLM-API
workers (tensorrt_llm/llmapi/trtllm-llmapi-launch; docs/source/commands/trtllm-serve/
trtllm-serve.rst "Multi-node Serving with Slurm"; examples/llm-api/llm_mgmn_trtllm_serve.sh:
"the number of MPI processes should be the same as the model world size"). Outside Slurm the
MPI world comes from `mpirun` over SSH, as NVIDIA's DGX Spark playbook does for two Sparks
(dgx-spark-playbooks nvidia/trt-llm/README.md, "Run on two Sparks", step 10:
`mpirun -x HF_TOKEN trtllm-llmapi-launch trtllm-serve $MODEL --tp_size 2 --backend pytorch ...`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from orchestrator.stages.deploy.options import (
    CONFIG_DIR,
    CONTAINER_WORKDIR,
    OPTIONS_FILE,
    SSH_DIR,
    SSH_PORT,
    Topology,
)

# What every rank needs from the leader's environment: processes that mpirun starts through
# sshd see none of the container's ENV, so the image's PATH and library path travel with -x.
FORWARDED_ENV = ("PATH", "LD_LIBRARY_PATH")


def container_serve_argv(recipe, bind_host: str) -> list[str]:
    """trtllm-serve argv as the container sees it: workdir paths under the read-only mount,
    the llm-api YAML from the config mount, and `bind_host` as --host."""
    from orchestrator.layout import WorkdirLayout
    from orchestrator.stages.serve import serve_segments
    from orchestrator.stages.trtllm import Segment, flatten

    workdir = Path(CONTAINER_WORKDIR)
    options_in_workdir = WorkdirLayout(workdir).llm_api_options

    def in_container(path: Path) -> Path:
        return Path(CONFIG_DIR / OPTIONS_FILE) if path == options_in_workdir else path

    segments = serve_segments(recipe, workdir, in_container)
    segments = [Segment(s.key, (s.tokens[0], bind_host)) if s.key == "serve.host" else s for s in segments]
    return flatten(segments)


def mpirun_argv(serve: list[str], topo: Topology, hostfile: str, env_names: tuple[str, ...] = ()) -> list[str]:
    """`mpirun ... trtllm-llmapi-launch trtllm-serve ...`: one rank per GPU, the same count on every node."""
    argv = [
        "mpirun", "--allow-run-as-root",
        "--hostfile", hostfile,
        "-np", str(topo.world_size),
        "--map-by", f"ppr:{topo.gpus_per_node}:node",
        "--bind-to", "none",
    ]
    for name in FORWARDED_ENV + tuple(env_names):
        argv += ["-x", name]
    return argv + ["trtllm-llmapi-launch"] + serve


# --- the scripts the containers run (shell, because hostnames and sshd are only known at start) ---

_SSHD_SETUP = f"""\
# sshd for mpirun. NVIDIA's DGX Spark playbook installs it at container start the same way
# (nvidia/trt-llm/assets/trtllm-mn-entrypoint.sh), so the release images may lack it. Without
# a package mirror on the nodes, use an image derived from the pinned one that has it.
if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client
fi
mkdir -p /root/.ssh /run/sshd /tmp/orchestrator-sshd
cp -rL {SSH_DIR}/. /root/.ssh/
chmod 700 /root/.ssh
chmod -R go-rwx /root/.ssh
cat > /root/.ssh/config <<'EOF'
Host *
  Port {SSH_PORT}
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
EOF
[ -f /tmp/orchestrator-sshd/host_key ] || ssh-keygen -q -t ed25519 -N '' -f /tmp/orchestrator-sshd/host_key
cat > /tmp/orchestrator-sshd/sshd_config <<'EOF'
Port {SSH_PORT}
HostKey /tmp/orchestrator-sshd/host_key
PidFile /tmp/orchestrator-sshd/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile /root/.ssh/authorized_keys
# The keys come from a read-only mount owned by another user (a Secret, the host's ~/.ssh).
StrictModes no
UsePAM no
EOF
"""

# LWS_LEADER_ADDRESS is "<lws>-<group>.<subdomain>.<namespace>" (lws pkg/utils/pod/pod_utils.go)
# and worker pods are "<lws>-<group>-<index>" on the same subdomain (api/leaderworkerset/v1
# leaderworkerset_types.go), so the leader can write the hostfile itself.
_LWS_HOSTFILE = """\
leader_pod="${{LWS_LEADER_ADDRESS%%.*}}"
domain="${{LWS_LEADER_ADDRESS#*.}}"
echo "$LWS_LEADER_ADDRESS slots={slots}" > {hostfile}
for ((i = 1; i < LWS_GROUP_SIZE; i++)); do
  echo "$leader_pod-$i.$domain slots={slots}" >> {hostfile}
done
"""

_WAIT_FOR_NODES = f"""\
# mpirun fails at once on a node whose sshd is not up yet; wait for every one.
while read -r host _; do
  until (exec 3<>"/dev/tcp/$host/{SSH_PORT}") 2>/dev/null; do
    echo "waiting for sshd on $host:{SSH_PORT}"
    sleep 5
  done
done < {{hostfile}}
"""


def _header(role: str, recipe_name: str) -> str:
    return (f"#!/usr/bin/env bash\n# {role} of the multi-node deployment {recipe_name}; "
            f"rendered by `orchestrator deploy`.\nset -euo pipefail\n")


def worker_script(recipe_name: str) -> str:
    """Worker nodes only run sshd: the leader's mpirun starts their ranks."""
    return (_header("Worker", recipe_name) + _SSHD_SETUP
            + "exec /usr/sbin/sshd -D -e -f /tmp/orchestrator-sshd/sshd_config\n")


def leader_script(recipe_name: str, launcher: list[str], hostfile: str, topo: Topology,
                  hostfile_from_lws: bool) -> str:
    """The leader runs sshd too (mpirun may reach its own node over SSH), then the launcher."""
    body = _SSHD_SETUP + "/usr/sbin/sshd -e -f /tmp/orchestrator-sshd/sshd_config\n"
    if hostfile_from_lws:
        body += _LWS_HOSTFILE.format(slots=topo.gpus_per_node, hostfile=hostfile)
    body += _WAIT_FOR_NODES.format(hostfile=hostfile)
    # An absolute mpirun path makes Open MPI set the same prefix (PATH, libraries) on every node.
    body += f'exec "$(command -v {launcher[0]})" {shlex.join(launcher[1:])}\n'
    return _header("Leader", recipe_name) + body
