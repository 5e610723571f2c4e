"""A JetStream cluster of ``nats-server`` processes on loopback, for chaos tests and ``eda infra --cluster``.

Owns the nodes' cluster config (names ``n1..nN``, client/route/monitor ports, one store dir each, routes
to every peer, ``sync_interval: always`` from ``app.dev.nats``), waiting for the meta leader, finding a
stream's leader and each node's own view of a stream (monitor ``/jsz``), and per-node fault injection:
kill (SIGKILL), pause/resume (SIGSTOP/SIGCONT), stop and restart with the same ports and data.

Layout under ``data_dir``: ``n1/``, ``n2/``, … each a ``NatsServer`` data dir (store, config, log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.dev.nats import NatsServer
from app.dev.postgres import embedded_postgres
from app.dev.process import HOST, PORT_ATTEMPTS, PORT_TAKEN, DevstackError, free_port, http_ok
from app.dev.stack import Prepare
from app.process.signals import stop_signals

CLUSTER_NAME = "eda"


@dataclass(frozen=True, slots=True)
class StreamReplicaState:
    """One node's local view of a stream (from its own ``/jsz``): what it has stored."""

    node: str
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    leader: str | None


@dataclass
class NatsCluster:
    """``size`` JetStream servers routed to each other; ``extra_config`` is added to every node
    (accounts, TLS). Use ``async with running_cluster(...)`` or ``start``/``stop``."""

    data_dir: Path
    size: int = 3
    extra_config: str = ""
    nodes: dict[str, NatsServer] = field(default_factory=dict, init=False)
    route_ports: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self._place()

    def _place(self) -> None:
        """Choose every node's ports (client, monitor, route) and config."""
        names = [f"n{i}" for i in range(1, self.size + 1)]
        self.route_ports = {name: free_port() for name in names}
        for name in names:
            self.nodes[name] = NatsServer(
                self.data_dir / name, server_name=name, extra_config=self._cluster_config(name)
            )

    def _cluster_config(self, name: str) -> str:
        routes = ", ".join(
            f"nats-route://{HOST}:{port}" for peer, port in self.route_ports.items() if peer != name
        )
        return (
            f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: {HOST}:{self.route_ports[name]}\n"
            f"  routes: [{routes}]\n}}\n{self.extra_config}\n"
        )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes.values()]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated, as ``EDA_NATS_URL`` takes them."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsServer:
        try:
            return self.nodes[name]
        except KeyError:
            raise DevstackError(f"no node {name!r} (have {sorted(self.nodes)})") from None

    async def start(self, timeout: float = 60.0) -> None:
        """Start every node (concurrently: each waits for its peers' routes) and the meta leader.

        A port is chosen free (``free_port``) but bound only when the node starts: another process can
        take it in between, and the node then exits at once ("address already in use"). Every node is
        then placed on new ports and started again (up to ``PORT_ATTEMPTS`` times)."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            started = await asyncio.gather(
                *(node.start(timeout) for node in self.nodes.values()), return_exceptions=True
            )
            failed = [r for r in started if isinstance(r, BaseException)]
            if not failed:
                break
            await self.stop()
            if attempt == PORT_ATTEMPTS or not all(PORT_TAKEN in str(exc) for exc in failed):
                raise failed[0]
            self._place()
        await self.wait_meta_leader(timeout)

    async def stop(self) -> None:
        for node in self.nodes.values():
            node.kill(signal.SIGCONT)  # a paused node would not honour SIGTERM
        await asyncio.gather(*(node.stop() for node in self.nodes.values()))

    # -- fault injection (by node name) -----------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no flush beyond what ``sync_interval: always`` already wrote."""
        self.node(name).kill(signal.SIGKILL)

    def pause(self, name: str) -> None:
        """SIGSTOP: the process freezes, its sockets stay open (a hung node, not a dead one)."""
        self.node(name).kill(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.node(name).kill(signal.SIGCONT)

    async def restart(self, name: str, timeout: float = 60.0) -> None:
        """Start a killed or stopped node again on the same ports with the same store."""
        node = self.node(name)
        if node.pid is not None:
            await node.stop()
        await node.start(timeout)

    # -- observation --------------------------------------------------------------------------------

    async def jsz(self, name: str, query: str = "") -> dict[str, Any]:
        """The node's ``/jsz`` monitor document (raises ``OSError`` if it does not answer)."""
        url = f"{self.node(name).monitor_url}/jsz{'?' + query if query else ''}"
        return await asyncio.to_thread(_get_json, url)

    async def meta_leader(self) -> str | None:
        """The meta leader once it is settled: every running node names the same leader and counts
        ``size`` peers, the leader sees all its followers current, and every running node's full
        ``/healthz`` (JetStream meta and assets current) answers 200."""
        docs: dict[str, dict[str, Any]] = {}
        for name, node in self.nodes.items():
            if node.pid is None:
                continue
            try:
                docs[name] = (await self.jsz(name)).get("meta_cluster") or {}
            except OSError:
                return None
        leaders = {doc.get("leader") for doc in docs.values()}
        if len(leaders) != 1 or any(doc.get("cluster_size") != self.size for doc in docs.values()):
            return None
        leader = leaders.pop()
        if leader not in docs:
            return None
        followers = docs[leader].get("replicas") or []
        running = {name for name in docs if name != leader}
        if not running <= {f.get("name") for f in followers if f.get("current")}:
            return None
        for name in docs:
            if not await asyncio.to_thread(http_ok, f"{self.node(name).monitor_url}/healthz", 2.0):
                return None
        return str(leader)

    async def wait_meta_leader(self, timeout: float = 60.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            leader = await self.meta_leader()
            if leader:
                return leader
            await asyncio.sleep(0.1)
        raise DevstackError(f"no JetStream meta leader within {timeout}s")

    async def replica_state(self, name: str, stream: str) -> StreamReplicaState | None:
        """What node ``name`` itself has stored of ``stream`` (None if it has no replica or is down)."""
        try:
            doc = await self.jsz(name, "streams=true")
        except OSError:
            return None
        for account in doc.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") != stream:
                    continue
                state = detail.get("state") or {}
                return StreamReplicaState(
                    node=name,
                    messages=int(state.get("messages", 0)),
                    bytes=int(state.get("bytes", 0)),
                    first_seq=int(state.get("first_seq", 0)),
                    last_seq=int(state.get("last_seq", 0)),
                    leader=(detail.get("cluster") or {}).get("leader"),
                )
        return None

    async def wait_converged(self, stream: str, timeout: float = 60.0) -> list[StreamReplicaState]:
        """Wait until every node reports the same last sequence and message count for ``stream``."""
        deadline = asyncio.get_running_loop().time() + timeout
        states: list[StreamReplicaState | None] = []
        while asyncio.get_running_loop().time() < deadline:
            states = [await self.replica_state(name, stream) for name in self.nodes]
            present = [s for s in states if s is not None]
            if len(present) == len(self.nodes) and len({(s.last_seq, s.messages) for s in present}) == 1:
                return present
            await asyncio.sleep(0.2)
        raise DevstackError(f"replicas of {stream} did not converge within {timeout}s: {states}")


async def stream_leader(js: Any, stream: str) -> str | None:
    """The current leader of ``stream`` as the cluster reports it (``js``: a nats-py JetStreamContext)."""
    info = await js.stream_info(stream)
    return info.cluster.leader if info.cluster is not None else None


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


@contextlib.asynccontextmanager
async def running_cluster(
    data_dir: Path, *, size: int = 3, extra_config: str = ""
) -> AsyncIterator[NatsCluster]:
    """A started cluster (meta leader elected) for the duration of the block."""
    cluster = NatsCluster(data_dir, size=size, extra_config=extra_config)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


async def serve_cluster_infra(data_dir: Path, size: int = 3, prepare: Prepare | None = None) -> None:
    """``eda infra --cluster N``: N JetStream nodes plus PostgreSQL; ``await prepare(nats_url, dsn)``
    (the CLI provisions at ``min(N, 5)`` replicas and migrates); print the URLs, wait for a signal."""
    with stop_signals() as stopping:
        async with (
            running_cluster(data_dir / "cluster", size=size) as cluster,
            embedded_postgres(data_dir) as pg,
        ):
            if prepare is not None:
                await prepare(cluster.url, pg.dsn)
            print(f"EDA_NATS_URL={cluster.url}", flush=True)
            print(f"EDA_DATABASE_URL={pg.dsn}", flush=True)
            print(f"EDA_STREAM_REPLICAS={min(size, 5)}", flush=True)
            for note in pg.notes:  # stderr: stdout is KEY=value lines for scripts
                print(note, file=sys.stderr, flush=True)
            await stopping.wait()
