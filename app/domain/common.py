"""Building blocks shared by every aggregate: the ``Decider`` shape, domain errors, value validation.

Pure: standard library only. Time and ids arrive on commands; nothing here reads a clock or a random source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Protocol


class DomainError(Exception):
    """A command that the aggregate's current state does not allow. ``code`` is stable for clients."""

    code: ClassVar[str] = "domain-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidValue(DomainError):
    """A value that is never valid, whatever the state (negative quantity, 3 decimals, ...)."""

    code = "invalid-value"


class InvalidTransition(DomainError):
    """A command that is valid in general but not in the aggregate's current state."""

    code = "invalid-transition"


class NotFound(DomainError):
    """A command addressed to an aggregate that does not exist yet."""

    code = "not-found"


class AlreadyExists(DomainError):
    """A create command for an aggregate that already exists with different data."""

    code = "already-exists"


class Event(Protocol):
    """Every domain event: a frozen dataclass with a stable wire name and a schema version."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]


@dataclass(frozen=True, slots=True)
class Decider[C, E, S]:
    """An aggregate as three pure parts: ``decide(command, state) -> events``, ``evolve``, ``initial``.

    ``state_types`` lists the concrete state classes (for snapshot codecs); ``event_types`` the events.
    Bump ``snapshot_schema`` whenever a state class changes shape: older snapshots are then ignored.
    """

    aggregate_type: str
    decide: Callable[[C, S], Sequence[E]]
    evolve: Callable[[S, E], S]
    initial: S
    event_types: tuple[type[E], ...]
    state_types: tuple[type[S], ...]
    snapshot_schema: int = 1

    def fold(self, events: Sequence[E], state: S | None = None) -> S:
        """Replay ``events`` onto ``state`` (default: the initial state)."""
        current = self.initial if state is None else state
        for event in events:
            current = self.evolve(current, event)
        return current


def cannot_apply(event: object, state: object) -> TypeError:
    """What an ``evolve`` raises for an event its state cannot take (a bug, or a stream out of order)."""
    return TypeError(f"event {type(event).__name__} cannot apply to {type(state).__name__}")


def money(value: Decimal | int | float | str, *, field: str = "amount") -> Decimal:
    """Parse a non-negative amount with at most two decimals, exactly (floats go through ``str``)."""
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError) as exc:
        raise InvalidValue(f"{field} must be a number, got {value!r}") from exc
    if not amount.is_finite():
        raise InvalidValue(f"{field} must be finite")
    if amount < 0:
        raise InvalidValue(f"{field} must be >= 0, got {amount}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise InvalidValue(f"{field} must have at most two decimals, got {amount}")
    return amount.quantize(Decimal("0.01"))


def positive_int(value: int, *, field: str) -> int:
    """An integer > 0 (bools are rejected: ``True`` is not a product id)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidValue(f"{field} must be a positive integer, got {value!r}")
    return value
