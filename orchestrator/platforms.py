"""Platforms, quantization formats and the support matrix, as data.

A new GPU is a new row in PLATFORMS; a new format a new row in FORMATS. The
checks in `orchestrator.recipe.checks` and the verdicts of `doctor` read these
tables; nothing else in the code branches on a GPU name.
Sources: ../shared/DESIGN.md "Facts about the target stack".
"""

from __future__ import annotations

from dataclasses import dataclass, field

BLACKWELL_SMS = frozenset({100, 103, 120, 121})


@dataclass(frozen=True)
class Platform:
    name: str
    gpu: str
    sm: int | None  # compute capability as major*10+minor; None = no NVIDIA GPU
    arch: str  # CPU architecture of the host: x86_64 | aarch64
    max_gpus: int
    gpu_memory_gb: float
    unified_memory: bool = False
    # llm-api moe_config.backend that runs NVFP4 MoE here (SM12x has only the CUTLASS kernels).
    moe_backend: str | None = None
    notes: str = ""

    @property
    def has_gpu(self) -> bool:
        return self.sm is not None

    @property
    def is_blackwell(self) -> bool:
        return self.sm in BLACKWELL_SMS

    @property
    def sm_label(self) -> str:
        return f"SM{self.sm}" if self.sm is not None else "no GPU"


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in [
        Platform("dgx-spark", "NVIDIA GB10", 121, "aarch64", 1, 128, unified_memory=True, moe_backend="CUTLASS",
                 notes="DGX Spark: one GB10 (SM121) with 128 GB unified CPU/GPU memory, aarch64 host."),
        Platform("b200", "NVIDIA B200", 100, "x86_64", 8, 180, moe_backend="CUTLASS",
                 notes="HGX B200: up to 8 GPUs (SM100) per node."),
        Platform("rtx-pro-6000", "NVIDIA RTX PRO 6000 Blackwell", 120, "x86_64", 8, 96, moe_backend="CUTLASS",
                 notes="RTX PRO 6000 Blackwell (SM120); NVFP4 MoE through the CUTLASS backend."),
        Platform("h100", "NVIDIA H100", 90, "x86_64", 8, 80,
                 notes="Hopper (SM90): FP8 build and serve; NVFP4 quantize/convert only (no FP4 GEMMs)."),
        Platform("h200", "NVIDIA H200", 90, "x86_64", 8, 141,
                 notes="Hopper (SM90): FP8 build and serve; NVFP4 quantize/convert only (no FP4 GEMMs)."),
        Platform("cpu", "none", None, "x86_64", 0, 0,
                 notes="No GPU: quantize and convert of small models only; serve uses the CPU reference engine."),
    ]
}


@dataclass(frozen=True)
class Format:
    """One quantization format: how modelopt makes it and where TensorRT-LLM can run it."""

    name: str
    modelopt_config: str | None  # attribute of modelopt.torch.quantization
    quant_algo: str | None  # TRT-LLM / hf_quant_config quant_algo
    run_sms: frozenset[int]  # GPUs whose kernels run this format (build + serve)
    why: str
    gemm_plugin: str = "auto"  # trtllm-build --gemm_plugin that fits the format
    is_nvfp4: bool = False
    suggest_instead: str | None = None
    calibration: str = "max"  # modelopt's algorithm in that config (awq_lite, smoothquant rewrite weights)


_FP8_SMS = frozenset({89, 90}) | BLACKWELL_SMS
_AMPERE_UP = frozenset({80, 86, 87}) | _FP8_SMS

FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("nvfp4", "NVFP4_DEFAULT_CFG", "NVFP4", BLACKWELL_SMS,
               "NVFP4 GEMMs need Blackwell FP4 tensor cores (SM100/103/120/121)", gemm_plugin="nvfp4",
               is_nvfp4=True, suggest_instead="fp8"),
        Format("nvfp4_awq", "NVFP4_AWQ_LITE_CFG", "NVFP4_AWQ", BLACKWELL_SMS,
               "NVFP4 GEMMs need Blackwell FP4 tensor cores (SM100/103/120/121)", gemm_plugin="nvfp4",
               is_nvfp4=True, suggest_instead="fp8", calibration="awq_lite"),
        Format("nvfp4_mlp_only", "NVFP4_MLP_ONLY_CFG", "NVFP4", BLACKWELL_SMS,
               "NVFP4 GEMMs need Blackwell FP4 tensor cores (SM100/103/120/121)", gemm_plugin="nvfp4",
               is_nvfp4=True, suggest_instead="fp8"),
        Format("nvfp4_experts_only", "NVFP4_EXPERTS_ONLY_CFG", "NVFP4", BLACKWELL_SMS,
               "NVFP4 GEMMs need Blackwell FP4 tensor cores (SM100/103/120/121)", gemm_plugin="nvfp4",
               is_nvfp4=True, suggest_instead="fp8"),
        Format("w4a16_nvfp4", "W4A16_NVFP4_CFG", "W4A16_NVFP4", BLACKWELL_SMS,
               "NVFP4 weight unpacking kernels ship for Blackwell only", gemm_plugin="nvfp4",
               is_nvfp4=True, suggest_instead="int4_awq"),
        Format("fp8", "FP8_DEFAULT_CFG", "FP8", _FP8_SMS,
               "FP8 tensor cores need Ada/Hopper/Blackwell (SM89+)", suggest_instead="int4_awq"),
        Format("int4_awq", "INT4_AWQ_CFG", "W4A16_AWQ", _AMPERE_UP,
               "INT4 AWQ (W4A16) kernels need SM80+", calibration="awq_lite"),
        Format("w4a8_awq", "W4A8_AWQ_BETA_CFG", "W4A8_AWQ", _FP8_SMS,
               "W4A8 AWQ uses FP8 activations: SM89+", suggest_instead="int4_awq", calibration="awq_lite"),
        Format("int8_sq", "INT8_SMOOTHQUANT_CFG", "W8A8_SQ_PER_CHANNEL", _AMPERE_UP,
               "INT8 SmoothQuant kernels need SM80+", calibration="smoothquant"),
        Format("none", None, None, _AMPERE_UP, "unquantized BF16/FP16 runs on SM80+"),
    ]
}

KV_CACHE_FORMATS: dict[str, str | None] = {"none": None, "fp8": "FP8", "nvfp4": "NVFP4"}


@dataclass(frozen=True)
class SupportRow:
    platform: str
    format: str
    quantize: bool
    build_serve: bool
    why: str


def support(platform: Platform, fmt: Format) -> SupportRow:
    """Whether `fmt` can be quantized and built/served on `platform`, with the reason."""
    runs = platform.sm is not None and platform.sm in fmt.run_sms
    if not platform.has_gpu:
        why = "no GPU: quantize/convert of small models on CPU only; TensorRT-LLM needs an NVIDIA GPU"
    elif runs:
        why = f"{platform.gpu} ({platform.sm_label}) runs {fmt.name}"
    else:
        why = f"{fmt.why}; {platform.name} is {platform.sm_label}"
    return SupportRow(platform.name, fmt.name, quantize=True, build_serve=runs, why=why)


def support_matrix() -> list[SupportRow]:
    return [support(p, f) for p in PLATFORMS.values() for f in FORMATS.values()]


@dataclass(frozen=True)
class KnownModel:
    """Facts about hub models we can check without downloading them."""

    num_experts: int | None
    params_b: float  # billions of parameters
    bf16_gb: float = field(default=0.0)


KNOWN_MODELS: dict[str, KnownModel] = {
    "mistralai/Mixtral-8x7B-Instruct-v0.1": KnownModel(8, 46.7, 86.99),
    "mistralai/Mixtral-8x7B-v0.1": KnownModel(8, 46.7, 86.99),
    "mistralai/Mixtral-8x22B-Instruct-v0.1": KnownModel(8, 141.0, 281.2),
}
