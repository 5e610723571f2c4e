"""Least-privilege NATS users per role, rendered as a nats-server ``authorization { users: [...] }`` block.

No runtime role may create, update, delete or purge a stream (an ``api`` user that may ``STREAM.UPDATE``
``EVENTS`` to ``max_age=1s`` empties it despite ``deny_delete``/``deny_purge``): runtime roles get
``STREAM.INFO`` and the rights on their own durable consumers only, and the user ``provision``
(``eda provision``: the chart's provision Job) creates and updates the streams, the bucket and the
durable consumers of ``app.deploy.provision.catalogue`` — and may not delete or purge anything either.
Each user subscribes to its own reply inboxes only (``_INBOX_<user>.>``; the role's processes use that
prefix, see ``Settings.inbox_prefix``), so no role can read another's replies (Direct Get answers,
publish acks).

- ``api``: appends ``events.order.*`` and ``events.inventory.*`` (set stock), allocates order ids
  (``counters.>``), snapshots (``$KV.snapshots.>``), reads (Direct Get, leader read on conflict);
  read-only JetStream introspection for ``/readyz``, the console and ``/api/v1/admin/dead-letters``;
  the console's one shared live-feed consumer: an ephemeral consumer on ``EVENTS`` (the exact subject
  ``CONSUMER.CREATE.EVENTS`` creates no durable) and its flow-control replies.
- ``projector``: its consumer ``projector-orders`` on ``EVENTS`` (it places it at its checkpoint:
  create/delete/info/next/ack), Direct Get, ``dlq.projector-orders.>`` (dead letters), and read-only
  introspection for its platform gauges.
- ``saga``: ``events.saga.*`` and ``events.order.*`` (order transitions), ``cmd.{inventory,payment,
  shipping}.*`` (commands), its timers (``sched.saga.>``; purging them from ``SAGA_TIMERS`` disarms
  a finished saga's timers — the one purge a runtime role may do, of that stream only), and
  next/ack/info of its consumers ``saga-orchestrator`` and ``saga-timeouts``.
- ``inventory`` / ``payment`` / ``shipping``: next/ack/info of their consumer ``worker-<name>`` on
  ``COMMANDS`` and their own ``events.<aggregate>.*`` (inventory: also ``events.reservation.*``);
  ``shipping`` also of ``worker-shipping-orders`` on ``EVENTS`` (it ships on ``OrderPaid``), and of
  no other consumer of ``EVENTS``.
- ``operator``: reads ``EVENTS`` (rebuilds), writes snapshots, purges old revisions of a snapshot key
  (``STREAM.PURGE.KV_snapshots``, ``eda snapshot --retain``), and takes backups (stream info, consumer
  positions, ``STREAM.SNAPSHOT`` with its chunk acks); restoring is an administrator's job.
- ``provision``: ``STREAM.INFO/CREATE/UPDATE`` of the catalogue's streams (``KV_snapshots`` included)
  and ``CONSUMER.INFO/CREATE`` of its durable consumers.

Passwords come from the environment (``EDA_NATS_PASSWORD`` of each role's process; the server gets them
as ``$EDA_NATS_PASSWORD_<ROLE>`` variables) and are never logged. Checked on a real nats-server with
these permissions: every role runs the seed flow without a "Permissions Violation" in the server log,
and every role is denied what it must not do (``tests/integration/test_security_nats.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from app.deploy.provision import catalogue
from app.eventstore.jsapi import API, consumer_next_subject, direct_get_subject, stream_msg_get_subject
from app.settings import user_inbox
from app.workers.paid_orders import PAID_ORDERS_CONSUMER

WORKERS: Mapping[str, tuple[str, ...]] = {
    "inventory": ("inventory", "reservation"),
    "payment": ("payment",),
    "shipping": ("shipping",),
}
PROVISION = "provision"


def inbox(role: str) -> str:
    """The reply-inbox prefix of ``role``'s connections (its user is named after it)."""
    return user_inbox(role)


@dataclass(frozen=True)
class RolePermissions:
    """Subjects a role may publish to and subscribe to (allow lists; everything else is denied)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()


def _info(*streams: str) -> tuple[str, ...]:
    return tuple(f"{API}.STREAM.INFO.{name}" for name in streams)


def _reads(stream: str = "EVENTS") -> tuple[str, ...]:
    direct = direct_get_subject(stream)
    return (direct, f"{direct}.>", stream_msg_get_subject(stream))


def _consume(stream: str, durable: str) -> tuple[str, ...]:
    """Use a provisioned durable consumer: info, pull, ack."""
    return (
        f"{API}.CONSUMER.INFO.{stream}.{durable}",
        consumer_next_subject(stream, durable),
        f"$JS.ACK.{stream}.{durable}.>",
    )


def _own_consumer(stream: str, durable: str, filter_subject: str) -> tuple[str, ...]:
    """Manage a durable consumer the role places itself (the projector's, at its checkpoint)."""
    create = f"{API}.CONSUMER.CREATE.{stream}.{durable}"
    return (
        f"{create}.{filter_subject}",
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{API}.CONSUMER.DELETE.{stream}.{durable}",
        *_consume(stream, durable),
    )


BASE = (f"{API}.INFO",)
# Read-only JetStream introspection: /readyz, the console's Health page, `eda status`, the projector's
# platform gauges (stream/consumer info and lists, dead letters, the saga timers' next-on-subject gets).
INTROSPECTION = (
    f"{API}.STREAM.INFO.*",
    f"{API}.STREAM.LIST",
    f"{API}.STREAM.NAMES",
    f"{API}.CONSUMER.LIST.*",
    f"{API}.CONSUMER.INFO.*.*",
    stream_msg_get_subject("SAGA_TIMERS"),
    *_reads("DLQ"),
)
SNAPSHOTS = ("$KV.snapshots.>", *_info("KV_snapshots"), *_reads("KV_snapshots"))


def _provisioner() -> RolePermissions:
    """Create/update exactly the catalogue's streams and durable consumers; nothing else."""
    wanted = catalogue(1)
    streams = [
        f"{API}.STREAM.{op}.{name}" for name in wanted.stream_names() for op in ("INFO", "CREATE", "UPDATE")
    ]
    consumers = []
    for stream, config in wanted.consumers:
        durable = config.durable_name
        consumers += [
            f"{API}.CONSUMER.INFO.{stream}.{durable}",
            f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"{API}.CONSUMER.CREATE.{stream}.{durable}",
            f"{API}.CONSUMER.CREATE.{stream}.{durable}.>",
        ]
    return RolePermissions(
        publish=(*BASE, *streams, *consumers),
        subscribe=(f"{inbox(PROVISION)}.>",),
        deny_publish=(f"{API}.STREAM.DELETE.>", f"{API}.STREAM.PURGE.>"),
    )


# Denied to every runtime role whatever its allow list says (a deny wins in nats-server): a wildcard
# allowed later by mistake still cannot reconfigure, delete or empty a stream.
RUNTIME_DENY = (
    f"{API}.STREAM.CREATE.>",
    f"{API}.STREAM.UPDATE.>",
    f"{API}.STREAM.DELETE.>",
    f"{API}.STREAM.PURGE.EVENTS",
    f"{API}.STREAM.RESTORE.>",
)


def _runtime_roles() -> dict[str, tuple[str, ...]]:
    """Every runtime role's publish allow-list."""
    roles: dict[str, tuple[str, ...]] = {
        "api": (
            *BASE,
            "events.order.*",
            "events.inventory.*",
            "counters.>",
            *SNAPSHOTS,
            *_reads("EVENTS"),
            *INTROSPECTION,
            f"{API}.CONSUMER.CREATE.EVENTS",  # ephemeral only: a durable needs a longer subject
            "$JS.FC.EVENTS.>",  # flow-control replies of that ordered consumer
        ),
        "projector": (
            *BASE,
            *_info("EVENTS", "DLQ"),
            *_reads("EVENTS"),
            *_own_consumer("EVENTS", "projector-orders", "events.order.>"),
            "dlq.projector-orders.>",
            *INTROSPECTION,
        ),
        "saga": (
            *BASE,
            "events.saga.*",
            "events.order.*",
            *(f"cmd.{w}.*" for w in WORKERS),
            "sched.saga.>",
            f"{API}.STREAM.PURGE.SAGA_TIMERS",
            *SNAPSHOTS,
            *_info("EVENTS", "COMMANDS", "SAGA_TIMERS"),
            *_reads("EVENTS"),
            *_consume("EVENTS", "saga-orchestrator"),
            *_consume("SAGA_TIMERS", "saga-timeouts"),
        ),
        "operator": (
            *BASE,
            *SNAPSHOTS,
            f"{API}.STREAM.PURGE.KV_snapshots",  # eda snapshot --retain: old revisions of a key
            *_reads("EVENTS"),
            *_reads("COUNTERS"),
            # backups: every stream's info, its consumers' positions and a snapshot, each chunk
            # acknowledged on $JS.SNAPSHOT.ACK (flow control); restores are for an administrator
            # (docs/operations.md), not the operator
            *INTROSPECTION,
            f"{API}.STREAM.SNAPSHOT.*",
            "$JS.SNAPSHOT.ACK.>",
        ),
    }
    for worker, aggregates in WORKERS.items():
        roles[worker] = (
            *BASE,
            *(f"events.{aggregate}.*" for aggregate in aggregates),
            *SNAPSHOTS,
            *_info("EVENTS", "COMMANDS"),
            *_reads("EVENTS"),
            *_consume("COMMANDS", f"worker-{worker}"),
            *(_consume("EVENTS", PAID_ORDERS_CONSUMER) if worker == "shipping" else ()),
        )
    return roles


def role_permissions() -> dict[str, RolePermissions]:
    """Every NATS user's permissions: the runtime roles (``api``, ``projector``, ``saga``, the workers,
    ``operator``) and ``provision``."""
    roles = {
        role: RolePermissions(publish=publish, subscribe=(f"{inbox(role)}.>",), deny_publish=RUNTIME_DENY)
        for role, publish in _runtime_roles().items()
    }
    roles[PROVISION] = _provisioner()
    return roles


def password_variable(role: str) -> str:
    """The server-side environment variable holding ``role``'s password (``EDA_NATS_PASSWORD_API``)."""
    return f"EDA_NATS_PASSWORD_{role.upper()}"


def _list(subjects: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in subjects) + "]"


def authorization_block(
    passwords: Mapping[str, str] | None = None, *, extra_users: Mapping[str, str] | None = None
) -> str:
    """The ``authorization {}`` block. Without ``passwords`` each password is the environment reference
    ``$EDA_NATS_PASSWORD_<ROLE>`` (resolved by nats-server at start: the chart's way); with them the
    literal values (tests, ``eda infra``). ``extra_users`` (name → password) get no restrictions (an
    administrator for tooling; keep it out of deployments)."""
    lines = ["authorization {", "  users: ["]
    for role, perms in role_permissions().items():
        password = json.dumps(passwords[role]) if passwords else f"${password_variable(role)}"
        publish = f"allow: {_list(perms.publish)}"
        if perms.deny_publish:
            publish += f", deny: {_list(perms.deny_publish)}"
        lines.append(
            f"    {{user: {json.dumps(role)}, password: {password}, permissions: {{"
            f"publish: {{{publish}}}, subscribe: {{allow: {_list(perms.subscribe)}}}}}}}"
        )
    for user, password in (extra_users or {}).items():
        lines.append(f"    {{user: {json.dumps(user)}, password: {json.dumps(password)}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def permissions_document() -> dict[str, dict[str, dict[str, list[str]]]]:
    """Every role's permissions as nats-server's ``permissions`` maps (role → publish/subscribe →
    allow/deny). The Helm chart renders its ``authorization {}`` block from this document, stored as
    ``helm/eda/files/nats-permissions.json`` (written by ``python -m app.deploy.natsauth``; a deploy test
    checks that the file and this module agree)."""
    doc: dict[str, dict[str, dict[str, list[str]]]] = {}
    for role, perms in role_permissions().items():
        publish = {"allow": list(perms.publish)}
        if perms.deny_publish:
            publish["deny"] = list(perms.deny_publish)
        doc[role] = {"publish": publish, "subscribe": {"allow": list(perms.subscribe)}}
    return doc


if __name__ == "__main__":
    print(json.dumps(permissions_document(), indent=2))
