"""The ``eda`` command line: one sub-command per role (typer). Each command imports its role lazily,
so ``eda --help`` stays fast and nothing connects at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cli = typer.Typer(
    name="eda",
    help="eda — event-sourced order platform on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@cli.callback()
def _root() -> None:
    """eda — event-sourced order platform on NATS JetStream (Event Sourcing + CQRS + Sagas)."""


DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the embedded servers keep their data.")]


@cli.command()
def infra(data_dir: DataDir = Path(".eda-data")) -> None:
    """Run only the embedded NATS JetStream and PostgreSQL servers; print their URLs, then wait."""
    import asyncio

    from app.devstack import serve_infra

    asyncio.run(serve_infra(data_dir))


def main() -> None:
    """Console-script entry point."""
    cli()
