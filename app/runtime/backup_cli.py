"""The ``eda backup``, ``eda restore`` and ``eda mirror`` commands (typer), registered on the main CLI by
``register``. Only typer is imported here; the engines load when a command runs."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from app.settings import Settings

# Ids handed out after a backup's cut belong to orders lost with the data after it: a restore leaves this
# many unused above the highest restored id (a gap, as a sequence's cache leaves after a crash) unless told
# otherwise, so no order id is handed out twice.
DEFAULT_SKIP_IDS = 100_000

MirrorUrl = Annotated[
    str | None, typer.Option("--mirror-url", help="NATS URL of the mirror's cluster (EDA_MIRROR_URL).")
]
MirrorStream = Annotated[
    str | None, typer.Option("--mirror-stream", help="Mirror stream name there (EDA_MIRROR_STREAM).")
]
MaxLag = Annotated[
    float | None,
    typer.Option("--max-mirror-lag", min=0, help="Fail when the mirror is further behind (seconds)."),
]


def _settings(
    mirror_url: str | None = None, stream: str | None = None, max_lag: float | None = None
) -> Settings:
    from app.settings import Settings
    from app.telemetry import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    update: dict[str, Any] = {}
    if mirror_url:
        update["mirror_url"] = mirror_url
    if stream:
        update["mirror_stream"] = stream
    if max_lag is not None:
        update["mirror_max_lag_s"] = max_lag
    return settings.model_copy(update=update)


def _run(make: Coroutine[Any, Any, Any], console: Console) -> None:
    """Run a command; a known failure prints one red line and exits 1 (no traceback)."""
    from app.backup.errors import EXPECTED

    try:
        asyncio.run(make)
    except EXPECTED as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def backup(
    *,
    to: Annotated[Path, typer.Option("--to", help="New or empty directory (with --keep: a root).")],
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=1, help="Write into TO/<UTC time>/ and keep the newest N backups there."),
    ] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Re-read and check it after.")] = True,
    mirror_url: MirrorUrl = None,
    mirror_stream: MirrorStream = None,
    max_mirror_lag: MaxLag = None,
) -> None:
    """Back up the event log, the other streams and PostgreSQL's non-rebuildable state
    (docs/operations.md)."""
    from app.runtime.backups import BackupOptions, run_backup

    console = _console()
    settings = _settings(mirror_url, mirror_stream, max_mirror_lag)
    _run(run_backup(settings, BackupOptions(to, keep, verify), console), console)


def restore(
    *,
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Backup directory (with --from-mirror: for PostgreSQL etc.)."),
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Only check the backup; change nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace non-empty streams and tables.")] = False,
    replicas: Annotated[
        int | None, typer.Option("--replicas", min=1, max=5, help="Stream replicas (EDA_STREAM_REPLICAS).")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild/--no-rebuild", help="Rebuild the read model after.")
    ] = True,
    from_mirror: Annotated[
        bool, typer.Option("--from-mirror", help="Take EVENTS from the disaster-recovery mirror.")
    ] = False,
    skip_ids: Annotated[
        int,
        typer.Option(
            "--skip-ids",
            min=0,
            help="Leave N order ids unused above the highest restored one, so ids handed out after the "
            "backup (lost with the data after the cut) are never handed out again; 0 accepts reuse.",
        ),
    ] = DEFAULT_SKIP_IDS,
    mirror_url: MirrorUrl = None,
    mirror_stream: MirrorStream = None,
) -> None:
    """Restore a backup (or the mirror) into empty servers: streams, PostgreSQL, ids, then the read model."""
    from app.runtime.backups import run_restore, run_verify

    console = _console()
    if source is None and not from_mirror:
        raise typer.BadParameter("give --from DIR and/or --from-mirror")
    if verify:
        if source is None:
            raise typer.BadParameter("--verify checks a backup directory: give --from DIR")
        _run(run_verify(source, console), console)
        return
    settings = _settings(mirror_url, mirror_stream)
    coro = run_restore(
        settings,
        source,
        console,
        force=force,
        replicas=replicas,
        from_mirror=from_mirror,
        rebuild=rebuild,
        skip_ids=skip_ids,
    )
    _run(coro, console)


mirror_cli = typer.Typer(
    help="The disaster-recovery mirror of EVENTS in a second NATS cluster.", no_args_is_help=True
)


@mirror_cli.command("create")
def mirror_create(
    *,
    mirror_url: MirrorUrl = None,
    mirror_stream: MirrorStream = None,
    source_domain: Annotated[
        str | None, typer.Option("--source-domain", help="The primary's JetStream domain (leafnode link).")
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, max=5)] = 1,
) -> None:
    """Create (or update) the mirror stream of EVENTS on the mirror's cluster."""
    from app.runtime.backups import run_mirror_create

    console = _console()
    settings = _settings(mirror_url, mirror_stream)
    _run(run_mirror_create(settings, source_domain, replicas, console), console)


@mirror_cli.command("status")
def mirror_status(
    mirror_url: MirrorUrl = None, mirror_stream: MirrorStream = None, max_lag: MaxLag = None
) -> None:
    """How far the mirror is behind the primary's EVENTS (exit 1 beyond --max-mirror-lag)."""
    from app.runtime.backups import run_mirror_status

    console = _console()
    settings = _settings(mirror_url, mirror_stream, max_lag)
    _run(run_mirror_status(settings, console), console)


def register(cli: typer.Typer) -> None:
    """Add ``backup``, ``restore`` and ``mirror`` to the ``eda`` command line."""
    cli.command()(backup)
    cli.command()(restore)
    cli.add_typer(mirror_cli, name="mirror")
