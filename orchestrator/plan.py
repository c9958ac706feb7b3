"""The stage graph of a recipe, described without running anything (`orchestrator plan`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.layout import WorkdirLayout
from orchestrator.recipe.root import STAGE_ORDER


@dataclass
class StagePlan:
    name: str
    runs: bool
    reason: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    where: str = "local (python)"
    argv: list[str] | None = None
    files: dict[str, str] = field(default_factory=dict)  # name -> content the stage writes (llm-api YAML)
    container: dict | None = None


def _trtllm_where(recipe) -> str:
    from orchestrator.images import image_for

    image = image_for(recipe.platform.value, recipe.build.backend.value, recipe.image)
    runtime = recipe.runtime.value
    if image is None:
        return "nowhere: no TRT-LLM image for this platform"
    arch = recipe.platform_info.arch
    if runtime == "local":
        return f"local (TRT-LLM {image.trtllm} tools on PATH)"
    prefix = "docker" if runtime == "docker" else "auto: local if on PATH, else docker"
    return f"{prefix} {image.pinned_ref(arch)} ({arch}, TRT-LLM {image.trtllm})"


def _docker_runner(recipe, tool: str):
    """The DockerRunner `tool` would run through (runtime docker, or auto with `tool` not on PATH); else None."""
    import shutil

    runtime = recipe.runtime.value
    if runtime == "local" or (runtime == "auto" and shutil.which(tool)):
        return None
    from orchestrator.runtime.docker import DockerRunner

    return DockerRunner(recipe)


def _container(runner, stage: str, argv: list[str], log_path: Path, ports=None) -> dict | None:
    from orchestrator.runtime.base import Job

    return runner.container_spec(Job(stage=stage, argv=argv, log_path=log_path, ports=ports or {}))


def plan(recipe) -> list[StagePlan]:
    """One StagePlan per stage in graph order, with skip reasons and the exact TRT-LLM commands."""
    from orchestrator.errors import UserError
    from orchestrator.stages.build import build_argv
    from orchestrator.stages.serve import llm_api_yaml, reference_argv, serve_argv
    from orchestrator.stages.trtllm import shown_path_map

    root = recipe.resolved_workdir
    lay = WorkdirLayout(root)
    plat = recipe.platform_info
    backend = recipe.build.backend.value
    stages: dict[str, StagePlan] = {}

    stages["fetch"] = StagePlan(
        "fetch", runs=True,
        inputs=[f"{recipe.model.source}@{recipe.model.revision or 'main'}"],
        outputs=[str(lay.source_model)], where="local (huggingface_hub)")
    stages["quantize"] = StagePlan(
        "quantize", runs=True,
        inputs=[recipe.model.source, f"calibration {recipe.quantize.calibration.dataset} x"
                f"{recipe.quantize.calibration.samples}"],
        outputs=[str(lay.checkpoint_hf), str(lay.modelopt_state)],
        where=_quantize_where(recipe))
    stages["convert"] = StagePlan(
        "convert", runs=True, inputs=[str(lay.modelopt_state)], outputs=[str(lay.checkpoint_trtllm)],
        where="local (modelopt export_tensorrt_llm_checkpoint)")
    if backend == "pytorch" or not plat.has_gpu:
        build = StagePlan("build", runs=False)
    else:
        docker = _docker_runner(recipe, "trtllm-build")
        argv = build_argv(recipe, root, shown_path_map(recipe))
        container = _container(docker, "build", build_argv(recipe, root, docker.path_in_runtime),
                               lay.log("build")) if docker else None
        build = StagePlan("build", runs=True, inputs=[str(lay.checkpoint_trtllm)], outputs=[str(lay.engine)],
                          where=_trtllm_where(recipe), argv=argv, container=container)
    stages["build"] = build
    stages["verify"] = StagePlan("verify", runs=True, inputs=[str(lay.checkpoint_hf), str(lay.checkpoint_trtllm)],
                                 outputs=["(report)"], where="local (safetensors headers)")
    stages["eval"] = StagePlan("eval", runs=True,
                               inputs=[recipe.model.source, str(lay.checkpoint_hf)], outputs=[str(lay.eval_json)])
    stages["card"] = StagePlan("card", runs=True, inputs=[str(lay.manifest)],
                               outputs=[str(lay.checkpoint_hf / "README.md")])
    if plat.has_gpu:
        files = {}
        options = llm_api_yaml(recipe)
        if options:
            files[str(lay.llm_api_options)] = options
        docker = _docker_runner(recipe, "trtllm-serve")
        argv = serve_argv(recipe, root, shown_path_map(recipe))
        ports = {recipe.serve.port: (recipe.serve.host, recipe.serve.port)}
        container = _container(docker, "serve", serve_argv(recipe, root, docker.path_in_runtime), lay.log("serve"),
                               ports) if docker else None
        own = ("own command: orchestrator deploy (one MPI job over the nodes: mpirun + trtllm-llmapi-launch "
               "wrap the argv below)" if recipe.nodes > 1 else "own command: orchestrator serve")
        serve = StagePlan("serve", runs=recipe.run.serve or recipe.run.bench,
                          reason="" if recipe.run.serve else own,
                          inputs=[str(lay.engine if backend == "tensorrt" else lay.checkpoint_hf)],
                          outputs=[f"http://{recipe.serve.host}:{recipe.serve.port}/v1"],
                          where=_trtllm_where(recipe), argv=argv, files=files, container=container)
    else:
        try:
            reference = reference_argv(recipe)
        except UserError:  # its model is not there yet
            reference = None
        serve = StagePlan("serve", runs=recipe.run.serve or recipe.run.bench,
                          reason="own command: orchestrator serve (CPU reference engine, not TensorRT-LLM)",
                          outputs=[f"http://{recipe.serve.host}:{recipe.serve.port}/v1"],
                          where="local (transformers serve: CPU reference engine)", argv=reference)
    stages["serve"] = serve
    stages["bench"] = StagePlan("bench", runs=recipe.run.bench,
                                reason="" if recipe.run.bench else "own command: orchestrator bench",
                                inputs=[f"http://{recipe.serve.host}:{recipe.serve.port}/v1"],
                                outputs=[str(lay.bench_json)], where="local (async HTTP client)")
    # Whether an engine stage runs is the pipeline's decision (one place); build is judged on the
    # recipe alone here, not on this machine's tools, so plan shows the same thing everywhere.
    from orchestrator.pipeline.graph import STAGES
    from orchestrator.stages.build import not_applicable

    for name, stage_def in STAGES.items():
        reason = not_applicable(recipe) if name == "build" else stage_def.skip_reason(recipe)
        stages[name].runs, stages[name].reason = reason is None, reason or ""
    for name in STAGE_ORDER:
        st = stages[name]
        if st.runs and not recipe.stage_runs(name):
            st.runs, st.reason = False, f"after run.until ({recipe.run.until.value})"
    return [stages[name] for name in STAGE_ORDER]


def _quantize_where(recipe) -> str:
    quant = recipe.quantize
    if quant.multi_gpu is None:
        return f"local (modelopt, {quant.device.value} device)"
    if quant.multi_gpu == "fsdp2":
        return f"local (modelopt, torchrun: {quant.gpus} FSDP2 ranks, one per GPU)"
    return f"local (modelopt, one process, layers over {quant.gpus} GPUs)"
