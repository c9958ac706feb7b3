"""Deployment files for a recipe: `orchestrator deploy RECIPE --target compose|kubernetes`.

Renders a docker compose file, or Kubernetes manifests (Deployment + Service on one node, a
LeaderWorkerSet across nodes), that run the pinned TRT-LLM image with the same trtllm-serve
argv and llm-api YAML as `orchestrator serve`, the workdir mounted read-only. Rendering
only: nothing here talks to Docker or a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.stages.deploy.options import DeployOptions, Target

__all__ = ["DeployOptions", "Rendered", "Target", "default_out", "render", "write"]

# Marks a directory as written by `deploy`, so a re-render may replace it whole (and drop
# files of an earlier topology) while a directory of someone else's files is never touched.
MARKER = ".orchestrator-deploy"


@dataclass
class Rendered:
    files: dict[str, str]  # file name -> content
    notes: list[str] = field(default_factory=list)  # what the user does next


def default_out(recipe, target: Target) -> Path:
    return recipe.resolved_workdir / "deploy" / target.value


def render(recipe, options: DeployOptions) -> Rendered:
    """The files for `options.target`, plus the steps that are the user's (secrets, copying the model)."""
    from orchestrator.stages.deploy.shared import deployment

    dep = deployment(recipe, options)
    if options.target is Target.compose:
        from orchestrator.stages.deploy.compose import render_compose

        files = render_compose(dep)
    else:
        from orchestrator.stages.deploy.kubernetes import render_kubernetes

        files = render_kubernetes(dep)
    return Rendered(files, _notes(dep))


def write(rendered: Rendered, out: Path) -> list[Path]:
    """Write the files into `out` all at once (a new directory renamed into place)."""
    from orchestrator.atomic import atomic_dir

    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UserError(f"--out {out}: exists and was not written by `orchestrator deploy`",
                        hint="give a new or empty directory; deploy replaces its own directory whole")
    with atomic_dir(out) as tmp:
        for name, text in rendered.files.items():
            (tmp / name).write_text(text)
        (tmp / MARKER).write_text("".join(f"{name}\n" for name in rendered.files))
    return [out / name for name in rendered.files]


def _notes(dep) -> list[str]:
    from orchestrator.layout import WorkdirLayout

    recipe, topo, options = dep.recipe, dep.topology, dep.options
    inside = WorkdirLayout(dep.model_host_path)
    needed = [inside.checkpoint_hf] + ([inside.engine] if recipe.build.backend.value == "tensorrt" else [])
    where = (f"PersistentVolumeClaim {options.model_pvc} (at its root)" if options.model_pvc
             else f"{dep.model_host_path} on {'every node' if topo.multi_node else 'the GPU node'}")
    notes = [f"the workdir must hold {', '.join(p.name + '/' for p in needed)} in {where} "
             f"(`orchestrator run` makes them); it is mounted read-only"]
    if options.target is Target.kubernetes:
        notes.append(f"HF_TOKEN (optional) comes only from Secret {options.hf_secret}: "
                     f"kubectl create secret generic {options.hf_secret} --from-literal=HF_TOKEN=...")
        if topo.multi_node:
            from orchestrator.stages.deploy.kubernetes import ssh_secret_name

            secret = ssh_secret_name(dep)
            notes.append("needs the LeaderWorkerSet controller (kubernetes-sigs/lws) in the cluster")
            notes.append(f"mpirun's SSH key: ssh-keygen -t ed25519 -N '' -f mpi-key && kubectl create secret generic "
                         f"{secret} --from-file=id_ed25519=mpi-key --from-file=authorized_keys=mpi-key.pub")
        notes.append(f"then: kubectl port-forward svc/{dep.name}-api {recipe.serve.port}:{recipe.serve.port}")
    elif topo.multi_node:
        notes.append("copy this directory to every node; passwordless SSH between the nodes with the user's "
                     "~/.ssh keys (mounted read-only), as in NVIDIA's connect-two-sparks playbook")
        notes.append("leader (first --hosts entry): docker compose --profile leader up -d; every other node: "
                     "docker compose --profile worker up -d")
    else:
        notes.append(f"docker compose up -d; the API answers at http://{recipe.serve.host}:{recipe.serve.port}/v1 "
                     f"once /health does (up to serve.health_timeout_s = {dep.startup_timeout_s}s)")
    return notes
