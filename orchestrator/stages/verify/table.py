"""The size table verify prints (rich), in the shape of the seed's model card."""

from __future__ import annotations

from orchestrator.stages.verify.report import VerifyReport, human_bytes


def size_tables(report: VerifyReport) -> list:
    """rich renderables: the size comparison, then bytes per dtype."""
    from rich.table import Table

    kind = {"hf": "unified HF checkpoint", "trtllm": "TensorRT-LLM checkpoint"}[report.kind]
    algo = report.quant_algo or "unquantized"
    kv = f", KV cache {report.kv_cache_quant_algo}" if report.kv_cache_quant_algo else ""
    mapping = (f", tp {report.mapping.get('tp_size', 1)} x pp {report.mapping.get('pp_size', 1)}"
               if report.mapping else "")
    if report.mapping.get("moe_ep_size", 1) > 1:
        mapping += f" (moe_tp {report.mapping.get('moe_tp_size')} x moe_ep {report.mapping['moe_ep_size']})"
    sizes = Table(title=f"{report.path}: {kind}, {algo}{kv}{mapping}: contract OK", title_justify="left")
    sizes.add_column("")
    sizes.add_column("value", justify="right")
    sizes.add_row("Original size", human_bytes(report.original_bytes))
    sizes.add_row("Quantized size", human_bytes(report.checkpoint_bytes))
    ratio, reduction = report.compression_ratio, report.reduction_pct
    sizes.add_row("Compression ratio", f"{ratio:.2f}x" if ratio else "-")
    sizes.add_row("Size reduction", f"{reduction:.1f}%" if reduction is not None else "-")
    sizes.add_row("Quantized modules", str(report.quantized_modules))
    sizes.add_row("Excluded linears", str(report.excluded_modules))
    sizes.add_row("Tensors / files", f"{report.tensors} / {len(report.files)}")
    if report.shards:
        sizes.add_row("shards recombine", report.shards)
    sizes.caption = f"original size: {report.original_source}"

    dtypes = Table(title="bytes per dtype", title_justify="left")
    dtypes.add_column("dtype")
    dtypes.add_column("bytes", justify="right")
    dtypes.add_column("share", justify="right")
    for dtype, size in report.bytes_by_dtype.items():
        share = 100.0 * size / report.checkpoint_bytes if report.checkpoint_bytes else 0.0
        dtypes.add_row(dtype, human_bytes(size), f"{share:.1f}%")
    return [sizes, dtypes]
