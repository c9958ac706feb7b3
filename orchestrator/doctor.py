"""`doctor`: what this machine has (GPUs, Docker, TRT-LLM tools, Python stack, disk) and a verdict for a recipe."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class Gpu:
    index: int
    name: str
    sm: int
    memory_gb: float
    driver: str


@dataclass
class Report:
    gpus: list[Gpu] = field(default_factory=list)
    gpu_note: str = ""
    docker: str = ""
    docker_ok: bool = False
    nvidia_runtime: bool = False
    tools: dict[str, str | None] = field(default_factory=dict)
    packages: dict[str, str | None] = field(default_factory=dict)
    free_disk_gb: float = 0.0
    verdict: list[tuple[str, str]] = field(default_factory=list)  # (level ok|warn|fail, message)


def probe_gpus() -> tuple[list[Gpu], str]:
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"no NVIDIA driver/GPU ({type(exc).__name__})"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 1e9
            gpus.append(Gpu(i, name.decode() if isinstance(name, bytes) else name, major * 10 + minor, mem, driver))
        return gpus, ""
    finally:
        pynvml.nvmlShutdown()


def probe_docker() -> tuple[bool, bool, str]:
    try:
        import docker
    except ImportError:
        return False, False, "docker SDK not installed"
    try:
        client = docker.from_env(timeout=5)
        info = client.info()
    except Exception as exc:
        return False, False, f"engine not reachable ({type(exc).__name__})"
    runtimes = info.get("Runtimes") or {}
    return True, "nvidia" in runtimes, f"engine {info.get('ServerVersion', '?')}"


def tool_version(tool: str) -> str | None:
    path = shutil.which(tool)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        text = (out.stdout or out.stderr).strip().splitlines()
        return f"{path} ({text[-1] if text else 'version unknown'})"
    except (OSError, subprocess.TimeoutExpired):
        return f"{path} (version unknown)"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def dir_size_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def disk_estimate_gb(recipe) -> float:
    """Rough disk the recipe's workdir needs: source + quantized checkpoints (HF + TRT-LLM) + engine."""
    from orchestrator.platforms import KNOWN_MODELS
    from orchestrator.recipe.checks import local_model_dir

    known = KNOWN_MODELS.get(recipe.model.source)
    local = local_model_dir(recipe)
    source = known.bf16_gb if known else (dir_size_gb(local) if local else 0.0)
    ratio = {"nvfp4": 3.5, "fp8": 1.9, "int4_awq": 3.2}.get(recipe.quantize.format.value.split("_")[0], 3.0)
    quantized = source / ratio
    fetched = source if known else 0.0
    return fetched + 3 * quantized  # checkpoint-hf, checkpoint-trtllm, engine


def diagnose(recipe=None) -> Report:
    report = Report()
    report.gpus, report.gpu_note = probe_gpus()
    report.docker_ok, report.nvidia_runtime, report.docker = probe_docker()
    report.tools = {t: tool_version(t) for t in ("trtllm-build", "trtllm-serve")}
    report.packages = {p: package_version(p) for p in
                       ("nvidia-modelopt", "torch", "transformers", "tensorrt_llm", "safetensors", "datasets")}
    workdir = recipe.resolved_workdir if recipe else Path.cwd()
    probe = workdir
    while not probe.exists():
        probe = probe.parent
    report.free_disk_gb = shutil.disk_usage(probe).free / 1e9
    if recipe is not None:
        report.verdict = verdict(recipe, report)
    return report


def verdict(recipe, report: Report) -> list[tuple[str, str]]:
    from orchestrator.images import image_for

    out: list[tuple[str, str]] = []
    plat, fmt = recipe.platform_info, recipe.format_info
    if plat.has_gpu:
        if not report.gpus:
            out.append(("warn", f"recipe targets {plat.name} ({plat.sm_label}) but this machine has no GPU: "
                        "plan/validate only, or run.until: convert with quantize.device: cpu for small models"))
        else:
            sms = {g.sm for g in report.gpus}
            if plat.sm not in sms:
                here = ", ".join(sorted({f"{g.name} (SM{g.sm})" for g in report.gpus}))
                out.append(("warn", f"recipe targets {plat.name} ({plat.sm_label}); this machine has {here}"))
            else:
                out.append(("ok", f"GPU matches {plat.name} ({plat.sm_label})"))
            per_node = recipe.checkpoint.world_size // max(recipe.nodes, 1)
            if len(report.gpus) < per_node:
                out.append(("fail", f"tp x pp = {recipe.checkpoint.world_size} GPUs over {recipe.nodes} node(s) needs "
                            f"{per_node} here, found {len(report.gpus)}"))
            if not any(g.sm in fmt.run_sms for g in report.gpus):
                out.append(("warn", f"{fmt.name} cannot be built/served on these GPUs ({fmt.why}); "
                            "quantize/convert still run"))
        image = image_for(plat.name, recipe.build.backend.value, recipe.image)
        if image is not None:
            if image.digests.get(plat.arch) is None:
                out.append(("warn", f"image {image.ref} has no pinned digest for {plat.arch} in docker/images.lock.yaml"
                            "; run `orchestrator images lock` where the registry is reachable"))
            tools_here = all(report.tools.values())
            if tools_here:
                out.append(("ok", "trtllm-build / trtllm-serve on PATH (runtime local)"))
            elif report.docker_ok:
                out.append(("ok" if report.nvidia_runtime else "warn",
                            f"docker {report.docker}; NVIDIA runtime {'present' if report.nvidia_runtime else 'MISSING'}"))
            else:
                out.append(("fail", f"neither TRT-LLM tools on PATH nor a Docker engine ({report.docker}): build/serve "
                            f"cannot run here; install Docker + NVIDIA Container Toolkit and pull {image.ref}"))
    if report.packages.get("nvidia-modelopt") is None:
        out.append(("fail", "nvidia-modelopt not installed: pip install -e '.[quantize]' (make setup does this)"))
    need = disk_estimate_gb(recipe)
    level = "ok" if report.free_disk_gb >= need else "fail"
    out.append((level, f"disk: {report.free_disk_gb:.1f} GB free, recipe needs about {need:.1f} GB"))
    return out
