"""Connecting to NATS from settings: cluster URLs, credentials, TLS, the role's own reply-inbox prefix
(``_INBOX_<user>``: its NATS user may subscribe to nothing else, so no role reads another's replies),
reconnects that never give up."""

from __future__ import annotations

import logging
import ssl

from nats.aio.client import Client as NATS

from app.settings import Settings

log = logging.getLogger(__name__)

# A hung server (SIGSTOP, a stuck VM) keeps its TCP connection open: only our pings notice. nats-py's
# default (every 120 s, 2 outstanding) stalls the application for ~6 minutes; this fails over in ~9-14 s.
PING_INTERVAL_S = 3
MAX_OUTSTANDING_PINGS = 2


async def connect_nats(settings: Settings, *, name: str = "eda") -> NATS:
    """Connect with every URL of ``EDA_NATS_URL``; reconnect forever (a cluster rides through restarts)."""
    nc = NATS()
    last_error: list[str] = [""]

    async def on_error(exc: Exception) -> None:
        # nats-py reports every failed attempt (4 per second while a server is down): say it once.
        message = str(exc) or type(exc).__name__
        log.log(logging.DEBUG if message == last_error[0] else logging.WARNING, "nats error: %s", message)
        last_error[0] = message

    async def on_disconnect() -> None:
        if nc.is_closed or nc.is_draining:  # our own close() at shutdown: not worth a warning
            log.debug("nats connection closed")
        else:
            log.warning("nats disconnected")

    async def on_reconnect() -> None:
        last_error[0] = ""
        log.info("nats reconnected")

    tls: ssl.SSLContext | None = None
    if settings.nats_tls_ca:
        tls = ssl.create_default_context(cafile=settings.nats_tls_ca)
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    await nc.connect(
        servers=settings.nats_servers(),
        name=name,
        user=settings.nats_user,
        password=password,
        user_credentials=settings.nats_creds,
        tls=tls,
        inbox_prefix=settings.inbox_prefix(),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,  # type: ignore[arg-type]  # typed int, used as seconds (float fine)
        ping_interval=PING_INTERVAL_S,
        max_outstanding_pings=MAX_OUTSTANDING_PINGS,
        connect_timeout=5,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return nc
