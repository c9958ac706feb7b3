"""What verify found: contract violations, and the numbers of the size table."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import UserError

_MAX_DETAILS = 20


@dataclass(frozen=True)
class Violation:
    """One broken rule: the tensor (or file) that breaks it, the rule's name, and what is wrong."""

    tensor: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.tensor}: breaks rule {self.rule}: {self.detail}"


class ContractViolation(UserError):
    """A checkpoint that does not match the format contract. Exit 2, naming the tensor and the rule."""

    def __init__(self, path: str, violations: list[Violation]):
        first, rest = violations[0], violations[1:]
        details = [str(v) for v in rest[:_MAX_DETAILS]]
        if len(rest) > _MAX_DETAILS:
            details.append(f"... and {len(rest) - _MAX_DETAILS} more")
        super().__init__(
            f"{path}: {len(violations)} contract violation(s); {first}", details=details,
            hint="the checkpoint is damaged or was not written by modelopt 0.47; "
                 "re-run the stage that made it (orchestrator quantize, or convert)",
        )
        self.violations = violations


@dataclass
class VerifyReport:
    """A checkpoint that passed: its kind, format and sizes (the size table's rows)."""

    path: str
    kind: str  # "hf" (unified Hugging Face) | "trtllm"
    quant_algo: str | None
    kv_cache_quant_algo: str | None
    group_size: int | None
    files: list[str]
    tensors: int
    quantized_modules: int
    excluded_modules: int
    checkpoint_bytes: int
    bytes_by_dtype: dict[str, int]
    original_bytes: int | None
    original_source: str  # where original_bytes came from
    mapping: dict[str, int] = field(default_factory=dict)  # TRT-LLM only
    shards: str | None = None  # TRT-LLM with tp x pp > 1: "ok" when the rank files join into the unsharded tensors

    @property
    def compression_ratio(self) -> float | None:
        if not self.original_bytes or not self.checkpoint_bytes:
            return None
        return self.original_bytes / self.checkpoint_bytes

    @property
    def reduction_pct(self) -> float | None:
        if not self.original_bytes:
            return None
        return 100.0 * (1.0 - self.checkpoint_bytes / self.original_bytes)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        data["compression_ratio"] = self.compression_ratio
        data["reduction_pct"] = self.reduction_pct
        return data


def human_bytes(size: int | None) -> str:
    """Binary units, as the seed's card reports model sizes (86.99 GB = 93.4e9 bytes)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.2f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.2f} TiB"
