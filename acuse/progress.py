"""Progress bars for long CLI work, drawn on standard error only when it is a terminal.

Logs go to standard error as well, as JSON lines whenever it is not a terminal, so a bar there
would corrupt them. Off a terminal the bar is a no-op. The library code reports progress
through a plain ``Callable[[int], None]`` that receives how many items it has just finished.
"""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

Advance = Callable[[int], None]


def _ignore(_count: int) -> None:
    return None


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Advance]:
    """Show a transient bar for ``total`` items (unknown when None); yield its advance function."""
    if not sys.stderr.isatty():
        yield _ignore
        return

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)

        def advance(count: int) -> None:
            progress.advance(task, count)

        yield advance
