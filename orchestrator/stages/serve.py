"""Serve stage: the trtllm-serve argv and llm-api YAML a recipe implies, and serving it.

Which flags exist depends on the pinned TRT-LLM version (orchestrator/data/trtllm_cli.json):
`--served_model_name` only on main (1.2 reports the model directory's name), `--backend`
is left out where the version deprecates it and pytorch is its default, and the llm-api
YAML goes through the first options flag the version accepts. On `platform: cpu`
(no TensorRT-LLM) the CPU reference engine stands in, with the same lifecycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import StageFailed, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.stages.trtllm import PathMap, Segment, flatten, pinned_image, same_path
from orchestrator.trtllm_spec import first_flag, has_flag, render_flag, tool_spec

TOOL = "trtllm-serve"
# The older spelling first: every 1.x release takes it, including 1.2 candidates that predate
# the --config alias (PR #9104, Nov 2025); both specs we hold list it.
LLM_API_OPTIONS_FLAGS = ("--extra_llm_api_options", "--config")


def served_model_name(recipe) -> str:
    """The model name we ask the server to report (where the version lets us choose)."""
    return recipe.serve.served_model_name or recipe.name


def _cli_version(recipe) -> str:
    image = pinned_image(recipe)
    if image is None:
        raise UserError(f"platform {recipe.platform.value} has no TensorRT-LLM image; serve uses the CPU reference "
                        "engine there")
    return image.cli_spec


def model_path(recipe, workdir: Path | None = None) -> Path:
    """What trtllm-serve loads: the engine (tensorrt backend) or the ModelOpt HF checkpoint (pytorch)."""
    layout = WorkdirLayout(workdir if workdir is not None else recipe.resolved_workdir)
    return layout.engine if recipe.build.backend.value == "tensorrt" else layout.checkpoint_hf


def reported_model_name(recipe) -> str:
    """The name /v1/models will list: ours where the version has --served_model_name, else the
    model directory's name (trtllm-serve 1.2: `self.model = model_dir.name` in openai_server.py)."""
    if recipe.platform_info.has_gpu and has_flag(_cli_version(recipe), TOOL, "--served_model_name"):
        return served_model_name(recipe)
    return model_path(recipe).name


def llm_api_options(recipe) -> dict[str, Any]:
    """The llm-api options YAML: generated for the pytorch backend, the recipe's own on top (any backend)."""
    serve, build = recipe.serve, recipe.build
    options: dict[str, Any] = {}
    if build.backend.value == "pytorch":
        options["kv_cache_config"] = {
            "dtype": serve.kv_cache_dtype.value,
            "free_gpu_memory_fraction": serve.free_gpu_memory_fraction,
        }
        if serve.cuda_graphs:
            options["cuda_graph_config"] = {"enable_padding": True, "max_batch_size": build.max_batch_size}
        moe_backend = serve.moe_backend.value
        if moe_backend == "auto":
            moe_backend = recipe.platform_info.moe_backend if recipe.format_info.is_nvfp4 else None
        if moe_backend:
            options["moe_config"] = {"backend": moe_backend}
    for key, value in serve.llm_api_options.items():
        if isinstance(value, dict) and isinstance(options.get(key), dict):
            options[key] = {**options[key], **value}
        else:
            options[key] = value
    return options


def llm_api_yaml(recipe) -> str | None:
    """The exact text written to layout.llm_api_options, or None when there are no options."""
    import yaml

    options = llm_api_options(recipe)
    return yaml.safe_dump(options, sort_keys=False) if options else None


def _omit_backend(version: str, backend: str) -> bool:
    """Leave --backend out where the version deprecates it and the backend is its default anyway."""
    spec = tool_spec(version, TOOL)
    opt = spec.option("--backend") if spec else None
    return opt is not None and opt.status == "deprecated" and opt.default == backend


def serve_segments(recipe, workdir: Path | None = None, path_in_runtime: PathMap = same_path) -> list[Segment]:
    """The trtllm-serve argv as recipe-keyed parts; paths as the runner sees them."""
    version = _cli_version(recipe)
    layout = WorkdirLayout(workdir if workdir is not None else recipe.resolved_workdir)
    serve, build, ckpt = recipe.serve, recipe.build, recipe.checkpoint
    backend = build.backend.value

    def opt(key: str, flag: str, value: object) -> Segment:
        return Segment(key, tuple(render_flag(version, TOOL, flag, value)))

    segments = [Segment("serve", (TOOL, str(path_in_runtime(model_path(recipe, layout.root)))))]
    if backend == "tensorrt":
        segments.append(Segment("serve", ("--tokenizer", str(path_in_runtime(layout.checkpoint_hf)))))
    if not _omit_backend(version, backend):
        segments.append(opt("build.backend", "backend", backend))
    segments += [opt("serve.host", "host", serve.host), opt("serve.port", "port", serve.port)]
    if has_flag(version, TOOL, "--served_model_name"):
        segments.append(opt("serve.served_model_name", "served_model_name", served_model_name(recipe)))
    segments += [
        opt("build.max_batch_size", "max_batch_size", build.max_batch_size),
        opt("build.max_num_tokens", "max_num_tokens", build.max_num_tokens),
        opt("build.max_seq_len", "max_seq_len", build.max_seq_len),
        opt("checkpoint.tp", "tp_size", ckpt.tp),
        opt("checkpoint.pp", "pp_size", ckpt.pp),
        opt("serve.free_gpu_memory_fraction", "kv_cache_free_gpu_memory_fraction", serve.free_gpu_memory_fraction),
    ]
    if ckpt.ep > 1:
        segments.append(opt("checkpoint.ep", "ep_size", ckpt.ep))
    if llm_api_options(recipe):
        flag = first_flag(version, TOOL, LLM_API_OPTIONS_FLAGS) or LLM_API_OPTIONS_FLAGS[0]
        segments.append(opt("serve.llm_api_options", flag, str(path_in_runtime(layout.llm_api_options))))
    for flag, value in serve.extra_flags.items():
        segments.append(opt(f"serve.extra_flags.{flag.lstrip('-')}", flag, value))
    return segments


def serve_argv(recipe, workdir: Path | None = None, path_in_runtime: PathMap = same_path) -> list[str]:
    """trtllm-serve argv for `recipe` (GPU platforms), never a shell string."""
    return flatten(serve_segments(recipe, workdir, path_in_runtime))


def reference_argv(recipe) -> list[str]:
    """The CPU reference engine's argv (platform cpu); built by orchestrator.stages.reference_server."""
    from orchestrator.stages.reference_server import reference_serve_argv

    return list(reference_serve_argv(recipe))


def server_argv(recipe, workdir: Path | None = None, path_in_runtime: PathMap = same_path) -> list[str]:
    """What `orchestrator serve` launches: trtllm-serve on GPU platforms, the CPU reference engine on cpu."""
    if not recipe.platform_info.has_gpu:
        return reference_argv(recipe)
    return serve_argv(recipe, workdir, path_in_runtime)


def _check_inputs(recipe, layout: WorkdirLayout) -> None:
    if not recipe.platform_info.has_gpu:
        return  # the CPU reference engine checks its own inputs
    model = model_path(recipe, layout.root)
    if recipe.build.backend.value == "tensorrt" and not any(model.glob("*.engine")):
        raise UserError(f"no engine in {model}", hint=f"run `orchestrator build {recipe.source_path or 'RECIPE'}`")
    if recipe.build.backend.value == "pytorch" and not (model / "config.json").is_file():
        raise UserError(f"no quantized checkpoint at {model} (config.json missing)",
                        hint=f"run `orchestrator quantize {recipe.source_path or 'RECIPE'}`")


def _reference_hook(recipe, name: str):
    """The CPU reference engine's optional hooks: `env` (its environment) and `preload(url, timeout_s)`
    (transformers serve loads the model on the first request). None on GPU platforms or when absent."""
    if recipe.platform_info.has_gpu:
        return None
    import importlib

    reference_server = importlib.import_module("orchestrator.stages.reference_server")
    if name == "env":
        make_env = getattr(reference_server, "reference_serve_env", None)
        return make_env() if make_env is not None else None
    return getattr(reference_server, name, None)


def runner_for(recipe):
    from orchestrator.runtime.select import runner_named

    return lambda name: runner_named(name, recipe)


def _what_to_launch(recipe, layout: WorkdirLayout, runner):
    """(runner, argv, env, expected model name): trtllm-serve on GPU platforms, the CPU reference engine on cpu."""
    from orchestrator.atomic import atomic_write_text

    if not recipe.platform_info.has_gpu:
        from orchestrator.runtime.local import LocalRunner

        return runner or LocalRunner(), reference_argv(recipe), _reference_hook(recipe, "env") or {}, \
            served_model_name(recipe)
    argv = serve_argv(recipe, layout.root, runner.path_in_runtime)
    options_text = llm_api_yaml(recipe)
    if options_text:
        atomic_write_text(layout.llm_api_options, options_text)
    return runner, argv, {}, reported_model_name(recipe)


def run_serve(recipe, detach: bool = False, runner=None, on_ready=None):
    """Serve `recipe` until Ctrl-C (or, detach=True, until `orchestrator stop`); the ServerInfo.

    Stops before launching when the tools are missing, the port is taken or a detached server
    of this recipe runs (UserError, exit 2); a server that dies or never gets healthy is
    StageFailed (exit 1). `on_ready(info)` is called once /health answers.
    """
    from orchestrator.manifest import now_iso
    from orchestrator.runtime import serve_process as sp
    from orchestrator.runtime.base import Job

    if recipe.nodes > 1:
        raise UserError(f"nodes={recipe.nodes}: a model spread over several hosts is served by one MPI job across "
                        "them (mpirun + trtllm-llmapi-launch on every node); render it with `orchestrator deploy "
                        f"{recipe.source_path or 'RECIPE'} --target compose|kubernetes` (README: Two DGX Sparks)")
    layout = WorkdirLayout(recipe.resolved_workdir)
    serve = recipe.serve
    running = sp.running_server(layout.serve_state, runner_for(recipe))
    if running:
        raise UserError(f"{recipe.name} is already served at {running.get('url')} (detached, log "
                        f"{running.get('log_path')}); `orchestrator stop {recipe.source_path or 'RECIPE'}` first")
    if runner is None and recipe.platform_info.has_gpu:  # first: without TRT-LLM or Docker, that is the thing to fix
        from orchestrator.runtime.select import select_runner

        runner = select_runner(recipe, TOOL)
    _check_inputs(recipe, layout)
    sp.ensure_port_free(serve.host, serve.port)
    runner, argv, env, expected = _what_to_launch(recipe, layout, runner)
    job = Job(stage="serve", argv=argv, log_path=layout.log("serve"), env=env,
              ports={serve.port: (serve.host, serve.port)})
    url = sp.base_url(serve.host, serve.port)
    started_at = now_iso()
    handle, startup_s = sp.start_and_wait_healthy(runner, job, url, serve.health_timeout_s, detach)
    try:
        preload = _reference_hook(recipe, "preload")
        if preload is not None:
            preload(url, serve.health_timeout_s)
        # trtllm-serve lists exactly the model it serves; the CPU reference engine (--force_model) answers to
        # any name and lists hub models instead, so there the recipe's name is the one to use.
        ids = sp.model_ids(url) if recipe.platform_info.has_gpu else []
        info = sp.ServerInfo(recipe=recipe.name, base_url=url, model=ids[0] if ids else expected,
                             log_path=str(job.log_path), argv=argv, runtime=runner.name, started_at=started_at,
                             startup_s=round(startup_s, 3), handle_state=handle.state())
        if detach:
            sp.write_state(layout.serve_state, info)
        if on_ready is not None:
            on_ready(info)
    except BaseException:  # Ctrl-C or a failure before we hand the server over: never leave it behind
        handle.stop(timeout=10.0)
        raise
    if detach:
        return info
    code = sp.run_foreground(handle)
    if code:  # None: stopped by Ctrl-C; 0: shut down cleanly by someone else
        raise StageFailed(f"the server exited with code {code} (log: {job.log_path})", log_tail=handle.log_tail(30))
    return info


def stop_serve(recipe, timeout: float = 30.0) -> dict[str, Any] | None:
    """Stop the server `serve --detach` started for `recipe`; its recorded state, or None if none was."""
    from orchestrator.runtime import serve_process as sp

    layout = WorkdirLayout(recipe.resolved_workdir)
    return sp.stop_server(layout.serve_state, runner_for(recipe), timeout=timeout)
