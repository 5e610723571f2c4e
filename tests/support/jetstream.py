"""JetStream test isolation: empty a server of every stream (and provision it again)."""

from __future__ import annotations

import nats


async def delete_all_streams(nats_url: str) -> None:
    """Delete every JetStream stream; KV buckets (``KV_*``) and object stores (``OBJ_*``) are streams
    too, so they go as well."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            await js.delete_stream(info.config.name)
    finally:
        await nc.close()


async def reset_and_provision(nats_url: str, replicas: int = 1) -> None:
    """Every stream deleted, then everything provisioned as ``eda provision`` does (the roles only check
    that it exists)."""
    from app.deploy.provision import provision

    await delete_all_streams(nats_url)
    nc = await nats.connect(nats_url)
    try:
        await provision(nc, replicas)
    finally:
        await nc.close()
