"""Least-privilege NATS users per role, rendered as a nats-server ``authorization { users: [...] }`` block.

Each role may publish only the subjects it must and subscribe only to its own reply inboxes:

- ``api``: appends ``events.order.*`` and ``events.inventory.*`` (set stock), allocates order ids
  (``counters.>``), snapshots (``$KV.snapshots.>``), reads (Direct Get, leader read on conflict) and
  manages its streams (INFO/CREATE/UPDATE of ``EVENTS``, ``COUNTERS``, ``KV_snapshots``); read-only
  JetStream introspection for ``/readyz``, the console, ``/api/v1/admin/dead-letters`` and ``eda status``.
- ``projector``: its consumer ``projector-orders`` on ``EVENTS`` (create/delete/info/next/ack), Direct
  Get, the dead-letter stream ``DLQ`` and ``dlq.projector-orders.>``; the same read-only introspection
  as the api for the platform gauges it samples (streams, consumers, the saga timer stream).
- ``saga``: ``events.saga.*`` and ``events.order.*`` (order transitions), ``cmd.{inventory,payment,
  shipping}.*`` (commands), its timers (``sched.saga.>``; purging them from ``SAGA_TIMERS`` disarms
  a finished saga's timers), its consumers ``saga-orchestrator`` and ``saga-timeouts``.
- ``inventory`` / ``payment`` / ``shipping``: only their consumer ``worker-<name>`` on ``COMMANDS``
  (filter ``cmd.<name>.>`` is part of the create subject, so no other filter can be asked for) and
  their own ``events.<aggregate>.*`` (inventory: also ``events.reservation.*``).
- ``operator``: the JetStream API except deleting streams, plus snapshots.

No role can delete a stream; none can purge one except the saga its own timer stream ``SAGA_TIMERS``.
Passwords come from the environment (``EDA_NATS_PASSWORD`` of each role's process; the server gets them
as ``$EDA_NATS_PASSWORD_<ROLE>`` variables) and are never logged. Found empirically: run every role
under its user and look for "Permissions Violation" in the server log
(``tests/integration/test_security_nats.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from app.eventstore.jsapi import API, consumer_next_subject, direct_get_subject, stream_msg_get_subject

WORKERS: Mapping[str, tuple[str, ...]] = {
    "inventory": ("inventory", "reservation"),
    "payment": ("payment",),
    "shipping": ("shipping",),
}


@dataclass(frozen=True)
class RolePermissions:
    """Subjects a role may publish to and subscribe to (allow lists; everything else is denied)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...] = ("_INBOX.>",)
    deny_publish: tuple[str, ...] = ()


def _streams(*names: str, create: bool = True) -> tuple[str, ...]:
    ops = ("INFO", "CREATE", "UPDATE") if create else ("INFO",)
    return tuple(f"{API}.STREAM.{op}.{name}" for name in names for op in ops)


def _reads(stream: str = "EVENTS") -> tuple[str, ...]:
    direct = direct_get_subject(stream)
    return (direct, f"{direct}.>", stream_msg_get_subject(stream))


def _consumer(stream: str, durable: str, filter_subject: str | None = None) -> tuple[str, ...]:
    create = f"{API}.CONSUMER.CREATE.{stream}.{durable}"
    return (
        create if filter_subject is None else f"{create}.{filter_subject}",
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{API}.CONSUMER.INFO.{stream}.{durable}",
        f"{API}.CONSUMER.DELETE.{stream}.{durable}",
        consumer_next_subject(stream, durable),
        f"$JS.ACK.{stream}.{durable}.>",
    )


BASE = (f"{API}.INFO",)
# Read-only JetStream introspection: /readyz, the console, `eda status`, the platform gauges
# (app/ops/gauges.py) and the saga census, which reads the timer stream message by message.
INTROSPECTION = (
    f"{API}.STREAM.INFO.*",
    f"{API}.STREAM.LIST",
    f"{API}.STREAM.NAMES",
    f"{API}.CONSUMER.LIST.*",
    f"{API}.CONSUMER.INFO.*.*",
    stream_msg_get_subject("SAGA_TIMERS"),
    *_reads("DLQ"),
)
SNAPSHOTS = ("$KV.snapshots.>", *_streams("KV_snapshots"), *_reads("KV_snapshots"))


def role_permissions() -> dict[str, RolePermissions]:
    """Every role's permissions (``api``, ``projector``, ``saga``, the workers, ``operator``)."""
    roles = {
        "api": RolePermissions(
            publish=(
                *BASE,
                "events.order.*",
                "events.inventory.*",
                "counters.>",
                *SNAPSHOTS,
                *_streams("EVENTS", "COUNTERS"),
                *_reads("EVENTS"),
                *INTROSPECTION,
            )
        ),
        "projector": RolePermissions(
            publish=(
                *BASE,
                *_streams("EVENTS", "DLQ"),
                *_reads("EVENTS"),
                *_consumer("EVENTS", "projector-orders", "events.order.>"),
                "dlq.projector-orders.>",
                *INTROSPECTION,
            )
        ),
        "saga": RolePermissions(
            publish=(
                *BASE,
                "events.saga.*",
                "events.order.*",
                *(f"cmd.{w}.*" for w in WORKERS),
                "sched.saga.>",
                f"{API}.STREAM.PURGE.SAGA_TIMERS",
                *SNAPSHOTS,
                *_streams("EVENTS", "COMMANDS", "SAGA_TIMERS"),
                *_reads("EVENTS"),
                *_consumer("EVENTS", "saga-orchestrator"),
                *_consumer("EVENTS", "saga-orchestrator", "events.>"),
                *_consumer("SAGA_TIMERS", "saga-timeouts"),
                *_consumer("SAGA_TIMERS", "saga-timeouts", "timeouts.saga.>"),
            )
        ),
        "operator": RolePermissions(
            # backups acknowledge each snapshot chunk on $JS.SNAPSHOT.ACK (flow control); restores are
            # for a provisioning identity (docs/operations.md), not the operator
            publish=(f"{API}.>", "$KV.snapshots.>", "$JS.SNAPSHOT.ACK.>"),
            deny_publish=(f"{API}.STREAM.DELETE.>", f"{API}.STREAM.PURGE.>", f"{API}.STREAM.RESTORE.>"),
        ),
    }
    for worker, aggregates in WORKERS.items():
        roles[worker] = RolePermissions(
            publish=(
                *BASE,
                *(f"events.{aggregate}.*" for aggregate in aggregates),
                *SNAPSHOTS,
                *_streams("EVENTS", "COMMANDS"),
                *_reads("EVENTS"),
                *_consumer("COMMANDS", f"worker-{worker}", f"cmd.{worker}.>"),
            )
        )
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
