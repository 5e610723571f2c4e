"""The ``eda`` command line: one sub-command per role (typer). Each command imports its role lazily,
so ``eda --help`` stays fast and nothing connects at import time."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.runtime.backup_cli import register as _register_backup

if TYPE_CHECKING:
    from rich.console import Console

    from app.settings import Settings

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


@contextlib.contextmanager
def _one_line_errors(command: str, *errors: type[BaseException]) -> Iterator[None]:
    """Failures a user can act on (a server that does not answer, no credentials, a server that does not
    start: ``Unavailable``, ``DevstackError`` and ``errors``) end the command with one line on stderr and
    exit code 1; anything else is a bug and keeps its traceback."""
    from app.dev.process import DevstackError
    from app.runtime.maintenance import Unavailable

    caught: tuple[type[BaseException], ...] = (Unavailable, DevstackError, *errors)
    try:
        yield
    except caught as exc:
        typer.echo(f"eda {command}: error: {exc}", err=True)
        raise typer.Exit(1) from None


DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the embedded servers keep their data.")]


@cli.command()
def infra(
    data_dir: DataDir = Path(".eda-data"),
    cluster: Annotated[
        int, typer.Option("--cluster", min=0, max=5, help="Run N clustered NATS nodes (e.g. 3).")
    ] = 0,
    bare: Annotated[
        bool,
        typer.Option(
            "--bare",
            help="Servers only: no streams, consumers or schema (as before a release's Jobs ran; "
            "eda provision and eda migrate add them).",
        ),
    ] = False,
) -> None:
    """Run only the embedded NATS JetStream and PostgreSQL servers, provisioned and migrated (unless
    --bare); print their URLs, then wait."""
    import asyncio

    with _one_line_errors("infra", OSError):
        if cluster > 1:
            from app.dev.cluster import serve_cluster_infra

            prepared = None if bare else _prepare(min(cluster, 5))
            asyncio.run(serve_cluster_infra(data_dir, cluster, prepared))
            return
        from app.dev.stack import serve_infra

        asyncio.run(serve_infra(data_dir, None if bare else _prepare()))


def _prepare(replicas: int | None = None) -> Callable[[str, str], Awaitable[None]]:
    """What ``eda infra`` runs once its servers are up: provision (at ``replicas``, default
    ``EDA_STREAM_REPLICAS``) and migrate, so roles started against it find everything in place."""
    from app.runtime.bootstrap import prepare
    from app.settings import Settings

    async def run(nats_url: str, dsn: str) -> None:
        values: dict[str, Any] = {"nats_url": nats_url, "database_url": dsn}
        if replicas is not None:
            values["stream_replicas"] = replicas
        await prepare(Settings(**values))

    return run


Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=1,
        help="Give up after this many seconds without the server (default: EDA_CONNECT_TIMEOUT_S).",
    ),
]


@cli.command()
def provision(
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", min=1, max=5, help="Stream replicas (default: EDA_STREAM_REPLICAS)."),
    ] = None,
    timeout: Timeout = None,
) -> None:
    """Create or update the JetStream streams, the snapshots bucket and the durable consumers (run as
    the provisioning identity; roles only check they exist). Never lowers a stream's replicas."""
    import asyncio

    from app.deploy.provision import ProvisionError
    from app.runtime.bootstrap import provision_run

    settings = _observe("provision")
    want = replicas or settings.stream_replicas
    wait = timeout or settings.connect_timeout_s
    try:
        outcomes = asyncio.run(provision_run(settings, want, lambda o: print(o, flush=True), timeout=wait))
    except ProvisionError as exc:
        typer.echo(f"eda provision: error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except TimeoutError as exc:
        typer.echo(
            f"eda provision: error: JetStream did not answer, or had no peers for the replicas, within "
            f"{wait:g} s (is EDA_NATS_URL right, are all servers up, and may "
            f"{settings.nats_user or 'this user'} provision?)",
            err=True,
        )
        raise typer.Exit(1) from exc
    counts = {a: sum(o.action == a for o in outcomes) for a in ("created", "updated", "unchanged")}
    print(f"provisioned at R{want}: " + ", ".join(f"{n} {a}" for a, n in counts.items()), flush=True)


@cli.command()
def rebuild(
    projection: Annotated[str, typer.Option("--projection", help="Projection to rebuild.")] = "orders",
    from_sequence: Annotated[int, typer.Option("--from-sequence", min=1)] = 1,
    to_sequence: Annotated[int | None, typer.Option("--to-sequence", min=1)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=50000)] = 5000,
) -> None:
    """Rebuild a read model: replay events into a shadow schema, catch up, swap it in atomically."""
    from app.readmodel.rebuild import InvalidRebuild, RebuildRequest
    from app.runtime.maintenance import rebuild as run

    request = RebuildRequest(
        projection, from_sequence=from_sequence, to_sequence=to_sequence, batch_size=batch_size
    )
    _maintenance("rebuild", run(_observe("rebuild"), request, _console()), InvalidRebuild)


@cli.command()
def snapshot(
    aggregate: Annotated[str, typer.Option("--aggregate", help="Aggregate type, e.g. order.")] = "order",
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only this id (repeatable).")] = None,
    min_events: Annotated[int | None, typer.Option("--min-events", min=1)] = None,
    retain: Annotated[int | None, typer.Option("--retain", min=1, max=100)] = None,
) -> None:
    """Snapshot aggregates now: all of a type, some ids, or those with >= N events since their last one."""
    from app.runtime.maintenance import snapshot as run
    from app.service.snapshotter import InvalidSnapshotRequest, SnapshotRequest

    request = SnapshotRequest(
        aggregate, ids=tuple(ids) if ids else None, min_events=min_events, retain=retain
    )
    _maintenance("snapshot", run(_observe("snapshot"), request, _console()), InvalidSnapshotRequest)


def _console() -> Console:
    from rich.console import Console

    return Console()


def _maintenance(command: str, run: Coroutine[Any, Any, Any], invalid: type[Exception]) -> None:
    """Run a maintenance command to its end; a request the engine refuses is a usage error, a server
    that does not answer one line (``_one_line_errors``)."""
    import asyncio

    try:
        with _one_line_errors(command):
            asyncio.run(run)
    except invalid as exc:
        raise typer.BadParameter(str(exc)) from exc


@cli.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON (schema: app/ops/status.schema.json).")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """The live system at a glance: streams, consumers, projection lag, sagas, dead letters, runs."""
    import contextlib

    from rich.console import Console

    from app.ops.status_view import run_status
    from app.settings import Settings

    with contextlib.suppress(KeyboardInterrupt):
        _run(run_status(Settings(), as_json=as_json, watch=watch, interval=interval, console=Console()))


@cli.command()
def operator(
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Watch one namespace (default: all).")
    ] = None,
    health_port: Annotated[
        int, typer.Option("--health-port", min=1, max=65535, help="Port of /healthz (on 0.0.0.0).")
    ] = 8080,
) -> None:
    """Run the kopf operator (ProjectionRebuild, Snapshot); health on :8080/healthz. Logs in with the
    in-cluster service account, else KUBECONFIG / ~/.kube/config."""
    from eda_operator.login import NoCredentials
    from eda_operator.main import run

    with _one_line_errors("operator", NoCredentials, OSError):  # OSError: e.g. the health port is taken
        run(namespace, health_port=health_port)


@cli.command()
def saga() -> None:
    """Run the order fulfilment saga orchestrator (health on EDA_HEALTH_PORT)."""
    from app.runtime.background import run_saga

    settings = _observe("saga")
    _run(run_saga(settings))


@cli.command()
def worker(
    names: Annotated[list[str], typer.Argument(help="inventory, payment and/or shipping.")],
) -> None:
    """Run one worker type (or several in one process): inventory, payment, shipping."""
    from app.runtime.background import run_workers
    from app.workers.commands import WORKERS

    chosen = tuple(w for w in WORKERS if w in names)
    if not chosen or len(chosen) != len(set(names)):
        raise typer.BadParameter(f"workers are {', '.join(WORKERS)}; got {names}")
    settings = _observe("worker-" + "-".join(chosen))
    _run(run_workers(chosen, settings))


def _observe(role: str, *, per_role: bool = False) -> Settings:
    """Telemetry (``OTEL_*``, service ``eda-<role>``; ``per_role``: each role of the process under its
    own name) and JSON logs (``EDA_LOG_LEVEL``) for a role; returns the role's settings."""
    from app.settings import Settings
    from app.telemetry import configure_logging, configure_telemetry

    settings = Settings()
    configure_logging(settings.log_level)
    configure_telemetry(f"eda-{role}", per_role=per_role)
    return settings


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a role on uvloop (when installed); call ``_observe`` first."""
    import asyncio

    try:
        import uvloop

        asyncio.run(coro, loop_factory=uvloop.new_event_loop)
    except ImportError:
        asyncio.run(coro)


@cli.command()
def dev(
    data_dir: DataDir = Path(".eda-data"),
    port: Annotated[int, typer.Option(help="API port.")] = 8082,
    host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Export traces and metrics via OTLP to this URL, e.g. http://127.0.0.1:4318 (Jaeger v2); "
            "sets OTEL_EXPORTER_OTLP_ENDPOINT.",
        ),
    ] = None,
) -> None:
    """The whole system in one process on embedded NATS + PostgreSQL (API on :8082). Ctrl-C stops."""
    import os

    from app.runtime.roles import dev as run_dev

    if otlp_endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
        if otlp_endpoint.rstrip("/").endswith(":4317"):
            os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    _observe("dev", per_role=True)  # eda-api, eda-saga, eda-worker-payment... as in the cluster
    _run(run_dev(data_dir, host=host, port=port))


@cli.command()
def api(
    host: Annotated[str, typer.Option(help="Bind address.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port.")] = 8082,
) -> None:
    """The HTTP API alone (EDA_NATS_URL, EDA_DATABASE_URL, EDA_AUTH_ISSUER)."""
    from app.auth.authenticator import config_error
    from app.runtime.roles import run_until_signal
    from app.runtime.server import api_server

    settings = _observe("api")
    problem = config_error(settings)
    if problem is not None:
        typer.echo(f"eda api: {problem}", err=True)
        raise typer.Exit(2)
    _run(run_until_signal(api_server(settings, host, port), []))


@cli.command()
def token(
    sub: Annotated[str, typer.Option("--sub", help="The subject (customer number, or any user name).")],
    scope: Annotated[
        str, typer.Option("--scope", help="Space-separated scopes, e.g. 'orders:write orders:read'.")
    ] = "orders:write orders:read",
    data_dir: DataDir = Path(".eda-data"),
) -> None:
    """Mint an access token from the identity provider of the `eda dev` running on --data-dir."""
    from app.dev.issuer import DevIssuer, DevIssuerError

    try:
        print(DevIssuer.load(data_dir).mint(sub, scope))
    except DevIssuerError as exc:
        typer.echo(f"eda token: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def projector() -> None:
    """The read-model projector alone; health on EDA_HEALTH_PORT (one active replica, others standby)."""
    from app.process.role import until_signal
    from app.runtime.roles import projector_role

    _run(until_signal(projector_role(_observe("projector"))))


@cli.command()
def migrate(timeout: Timeout = None) -> None:
    """Apply the PostgreSQL migrations, as the schema owner (roles wait until this has run)."""
    from app.runtime.maintenance import migrate as run

    settings = _observe("migrate")

    async def go() -> None:
        applied = await run(settings, wait_s=timeout)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"), flush=True)

    with _one_line_errors("migrate"):
        _run(go())


_register_backup(cli)


def main() -> None:
    """Console-script entry point."""
    cli()
