"""Mapping failures to condition reasons, and which of them are worth retrying."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import nats.errors
import nats.js.errors

from app.eventstore.ports import EventStoreError
from app.readmodel.rebuild import InvalidRebuild
from app.service.snapshotter import InvalidSnapshotRequest

INVALID_SPEC = "InvalidSpec"
NATS_UNAVAILABLE = "NatsUnavailable"
DATABASE_UNAVAILABLE = "DatabaseUnavailable"


class InvalidSpec(ValueError):
    """The object's spec can never work (wrong types, values, unknown names)."""


class NatsUnavailable(ConnectionError):
    """NATS could not be reached."""


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified error: condition reason, whether to retry, a one-line message."""

    reason: str
    transient: bool
    message: str


def classify(exc: BaseException) -> Failure:
    """Classify ``exc``: invalid specs are permanent, unreachable dependencies transient."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, InvalidSpec | InvalidRebuild | InvalidSnapshotRequest):
        return Failure(INVALID_SPEC, False, str(exc))
    if isinstance(exc, NatsUnavailable | EventStoreError | nats.errors.Error | nats.js.errors.Error):
        return Failure(NATS_UNAVAILABLE, True, message)
    if isinstance(
        exc, DatabaseUnavailable | asyncpg.PostgresConnectionError | asyncpg.InterfaceError | OSError
    ):
        return Failure(DATABASE_UNAVAILABLE, True, message)
    if isinstance(exc, TimeoutError):
        return Failure(NATS_UNAVAILABLE, True, message)
    return Failure("Error", True, message)
