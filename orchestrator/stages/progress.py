"""Progress reporting for long stages, without tying the library to a terminal.

A stage takes `progress: ProgressFn | None` and calls `progress(task, completed, total)`;
the caller decides how to show it. `rich_progress()` is the terminal flavour the commands
use (one bar per task name); the pipeline can pass its own function to nest the bars.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

ProgressFn = Callable[[str, float, "float | None"], None]  # (task, completed, total)


@contextlib.contextmanager
def rich_progress(enabled: bool = True) -> Iterator[ProgressFn | None]:
    """Yield a ProgressFn drawing rich bars on stderr (None when disabled or stderr is no terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Bound to the real stderr now: stages send library chatter to their log by swapping sys.stderr.
    console = Console(file=sys.stderr, highlight=False)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, redirect_stdout=False, redirect_stderr=False, transient=False)
    tasks: dict[str, int] = {}

    def update(task: str, completed: int, total: int | None) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total)
        bars.update(tasks[task], completed=completed, total=total)

    with bars:
        yield update
