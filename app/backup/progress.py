"""Progress of a backup, verify or restore: one ``Progress`` interface the engines report to, a rich
display for the command line (``RichProgress``), and ``NullProgress``. The operator maps it into
``.status`` instead."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import (
    Progress as RichBar,
)


class Progress(Protocol):
    def begin(self, part: str, total_bytes: int | None) -> None:
        """A part (a stream, the PostgreSQL schema, a check) starts; its size if known."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more of the current part are done."""

    def end(self, summary: str) -> None:
        """The current part is done; ``summary`` says what it held."""


class NullProgress:
    def begin(self, part: str, total_bytes: int | None) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def end(self, summary: str) -> None:
        pass


class RichProgress:
    """A bar per part (bytes, rate, time left) and a line per finished part; use as a context manager."""

    def __init__(self, console: Console, verb: str) -> None:
        self._console = console
        self._verb = verb
        self._bar = RichBar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None
        self._part = ""

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def begin(self, part: str, total_bytes: int | None) -> None:
        self._part = part
        self._task = self._bar.add_task(f"{self._verb} {part}", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def end(self, summary: str) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
        self._console.print(f"  [green]✓[/] {self._part}: {summary}")
