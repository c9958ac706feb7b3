"""How a pipeline run looks on a terminal: one rich progress display, nested progress for long stages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from orchestrator.pipeline.execute import Events


class QuietEvents(Events):
    """--quiet / --json: only warnings (to stderr)."""

    def warn(self, message: str) -> None:
        print(message, file=sys.stderr)


class RichEvents(Events):
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, highlight=False)
        self.progress_bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.completed:.0f}/{task.total}"), TimeElapsedColumn(),
                                     console=self.console, transient=True)
        self.tasks: dict[str, int] = {}
        self.current: str | None = None

    def __enter__(self) -> RichEvents:
        self.progress_bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress_bar.stop()

    def stage_start(self, name: str) -> None:
        self.current = name
        self.tasks[name] = self.progress_bar.add_task(f"[bold]{name}[/]", total=None)

    def stage_end(self, name: str, status: str, detail: str = "") -> None:
        colour = {"done": "green", "up to date": "cyan", "skipped": "yellow", "failed": "red"}.get(status, "white")
        task = self.tasks.pop(name, None)
        if task is not None:
            self.progress_bar.remove_task(task)
        for key in [k for k in self.tasks if k.startswith(f"{name}/")]:
            self.progress_bar.remove_task(self.tasks.pop(key))
        self.console.print(f"[{colour}]{status:>10}[/] {name}" + (f"  ({detail})" if detail else ""))

    def progress(self, description: str, completed: float, total: float | None) -> None:
        key = f"{self.current}/{description}"
        if key not in self.tasks:
            self.tasks[key] = self.progress_bar.add_task(f"  {description}", total=total)
        self.progress_bar.update(self.tasks[key], completed=completed, total=total)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]{message}[/]")


def _size(num: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num < 1000 or unit == "TB":
            return f"{num:.1f} {unit}" if unit != "B" else f"{int(num)} B"
        num /= 1000
    return f"{num:.1f} TB"


def print_summary(manifest, as_json: bool = False) -> None:
    """The table of what was made where (also `orchestrator status`)."""
    if as_json:
        print(json.dumps(manifest.to_dict(), indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 120))
    table = Table(title=f"{manifest.recipe}: manifest", show_lines=False)
    for column in ("stage", "status", "duration", "peak CPU", "peak GPU", "artifacts / reason"):
        table.add_column(column)
    for name, rec in manifest.stages.items():
        arts = ", ".join(f"{Path(a['path']).name} ({_size(a['bytes'])})" for a in rec.artifacts.values())
        table.add_row(name, rec.status, f"{rec.duration_s:.1f}s" if rec.duration_s is not None else "",
                      f"{rec.peak_cpu_mem_gb:.2f} GB" if rec.peak_cpu_mem_gb else "",
                      f"{rec.peak_gpu_mem_gb:.2f} GB" if rec.peak_gpu_mem_gb else "",
                      arts or rec.reason)
    console.print(table)
    for line in highlights(manifest):
        console.print(line, markup=False)


def highlights(manifest) -> list[str]:
    """The headline numbers a run produced: sizes, perplexity gate, endpoint speed."""
    lines = []
    stages = manifest.stages
    verify = stages.get("verify")
    if verify is not None and verify.status == "done":
        for kind, report in verify.metrics.items():
            if isinstance(report, dict) and report.get("original_bytes"):
                lines.append(f"size ({kind}): {_size(report['original_bytes'])} -> {_size(report['checkpoint_bytes'])}"
                             f" ({report['compression_ratio']:.2f}x, -{report['reduction_pct']:.1f}%)")
    ev = stages.get("eval")
    if ev is not None and ev.metrics.get("original_perplexity") is not None:
        m = ev.metrics
        verdict = "passes" if m.get("passed") else "FAILS"
        lines.append(f"perplexity ({m.get('dataset')}, {m.get('tokens')} tokens): original {m['original_perplexity']:.3f}"
                     f", {m.get('quant_algo', 'quantized')} {m['quantized_perplexity']:.3f}, ratio {m['ratio']:.4f} "
                     f"{verdict} the gate (<= {m.get('max_ratio')})")
    if manifest.stages.get("card") is not None and manifest.stages["card"].artifacts:
        card = next(iter(manifest.stages["card"].artifacts.values()))["path"]
        lines.append(f"model card: {card}")
    return lines
