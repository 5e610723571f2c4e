"""JetStream test isolation: empty a server of every stream."""

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
