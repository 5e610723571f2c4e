"""The dev cluster (``app.dev.cluster``) starts although a port it chose is taken before its node binds
it (``free_port`` is a moment's view: another process's ephemeral port can land there — a fresh-clone
run lost a test to "Error listening on router port ... address already in use")."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from app.dev.cluster import NatsCluster
from app.dev.nats import embedded_nats
from app.dev.process import HOST, PORT_TAKEN, DevstackError


async def test_a_taken_port_moves_the_cluster_to_new_ports(short_tmp: Path) -> None:
    cluster = NatsCluster(short_tmp / "cluster")
    taken = cluster.route_ports["n2"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, taken))
        squatter.listen()
        try:
            await cluster.start()
            assert taken not in cluster.route_ports.values()
            nc = await nats.connect(cluster.urls)
            try:
                info = await nc.jetstream().account_info()  # the meta leader answers: a working cluster
                assert info.limits is not None
            finally:
                await nc.close()
        finally:
            await cluster.stop()


async def test_a_port_the_caller_names_is_never_moved(short_tmp: Path) -> None:
    """``embedded_nats`` chooses new ports only for the ones it chose itself: a named port that is taken
    fails with the server's reason."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(DevstackError, match=PORT_TAKEN):
            async with embedded_nats(short_tmp / "nats", port=taken):
                pass
