"""The facts both renderers share, computed once from the recipe and the options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.stages.deploy.options import DeployOptions, Target, Topology, resource_name, topology


@dataclass(frozen=True)
class Deployment:
    recipe: Any
    options: DeployOptions
    topology: Topology
    name: str
    image: str
    trtllm: str
    model_host_path: Path
    llm_api_yaml: str | None  # the llm-api options file, exactly as `orchestrator serve` writes it
    startup_timeout_s: int
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def provenance(self) -> dict[str, Any]:
        """How these files were made (recorded in the files themselves)."""
        source = self.recipe.source_path
        return {
            "recipe": self.recipe.name,
            "recipe_file": str(source) if source else None,
            "trtllm": self.trtllm,
            "image": self.image,
            "tp": self.recipe.checkpoint.tp, "pp": self.recipe.checkpoint.pp, "ep": self.recipe.checkpoint.ep,
            "nodes": self.topology.nodes,
        }

    def header_comment(self, how: str) -> str:
        source = self.recipe.source_path or self.recipe.name
        return (f"# Rendered by `orchestrator deploy {source} --target {self.options.target.value}` "
                f"(TRT-LLM {self.trtllm}, {self.image}).\n# Apply: {how}\n")


def deployment(recipe, options: DeployOptions) -> Deployment:
    """Resolve everything the renderers need; raises UserError for choices that cannot work."""
    from orchestrator import __version__
    from orchestrator.errors import UserError
    from orchestrator.images import image_for
    from orchestrator.stages.serve import llm_api_yaml

    if options.target is Target.compose and options.model_pvc:
        raise UserError("--model-pvc is for --target kubernetes; compose mounts --model-path from the host")
    if options.target is Target.kubernetes and options.hosts:
        raise UserError("--hosts is for --target compose; a LeaderWorkerSet finds its pods by name")
    topo = topology(recipe, options)
    plat = recipe.platform_info
    image = image_for(plat.name, recipe.build.backend.value, recipe.image)
    if image is None:
        raise UserError(f"platform={plat.name!r}: the image lock pins no TensorRT-LLM image for backend "
                        f"{recipe.build.backend.value}", hint="add one to docker/images.lock.yaml or set image:")
    name = resource_name(recipe.name)
    model_path = Path(options.model_path or recipe.resolved_workdir).expanduser()
    if not model_path.is_absolute():
        model_path = model_path.resolve()  # compose and hostPath both need an absolute path
    return Deployment(
        recipe=recipe,
        options=options,
        topology=topo,
        name=name,
        image=image.pinned_ref(plat.arch),
        trtllm=image.trtllm,
        model_host_path=model_path,
        llm_api_yaml=llm_api_yaml(recipe),
        startup_timeout_s=int(recipe.serve.health_timeout_s),
        labels={
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/component": "trtllm-serve",
            "app.kubernetes.io/part-of": "trtllm-orchestrator",
            "app.kubernetes.io/version": _label_value(image.trtllm),
            "orchestrator/version": _label_value(__version__),
        },
    )


def _label_value(text: str) -> str:
    """Label values: 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)[:63]
    return cleaned.strip("._-")


def dump_yaml(data: Any) -> str:
    """YAML with multi-line strings (scripts, embedded YAML) as literal blocks, so they read as written."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: each file reads on its own
            return True

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
