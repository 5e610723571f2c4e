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


@cli.command()
def saga() -> None:
    """Run the order fulfilment saga orchestrator (health on EDA_HEALTH_PORT)."""
    import asyncio
    import logging

    from app.saga.runner import run_saga
    from app.settings import Settings

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(run_saga(settings))


@cli.command()
def worker(
    names: Annotated[list[str], typer.Argument(help="inventory, payment and/or shipping.")],
) -> None:
    """Run one worker type (or several in one process): inventory, payment, shipping."""
    import asyncio
    import logging

    from app.messaging import WORKERS
    from app.settings import Settings
    from app.workers.runner import run_workers

    chosen = tuple(w for w in WORKERS if w in names)
    if not chosen or len(chosen) != len(set(names)):
        raise typer.BadParameter(f"workers are {', '.join(WORKERS)}; got {names}")
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(run_workers(chosen, settings))


def main() -> None:
    """Console-script entry point."""
    cli()
