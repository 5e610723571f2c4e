"""What a worker tells about a command: a ``process cmd.<worker>.{id}`` CONSUMER span (``process
events.order.{id}`` for an order event the worker acts on), a child of the saga's span (the command's
``traceparent`` header, or the event's envelope), inside which the worker's events are
appended; ERROR status when the command was refused (stock short, payment declined, shipment failed)
or failed; metrics ``eda.worker.commands{worker,kind,outcome}`` (outcome: ok, refused, noop, invalid,
error) and ``eda.worker.command.duration{worker,kind}``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from nats.aio.msg import Msg

from app.domain.inventory.events import ReservationRejected
from app.domain.payment.decider import PaymentDeclined
from app.domain.shipping.decider import ShipmentFailed
from app.eventstore.consumer import PermanentError
from app.eventstore.envelope import Metadata
from app.telemetry import consumer_span, mark_error, meter, recording_appends
from app.workers.commands import WorkerCommand, kind_of

REFUSALS = frozenset({ReservationRejected.TYPE, PaymentDeclined.TYPE, ShipmentFailed.TYPE})
"""Events that mean "the step failed" (the saga compensates)."""


class WorkerTelemetry:
    """The spans and instruments of the workers of one process."""

    def __init__(self) -> None:
        m = meter()
        self._commands = m.create_counter(
            "eda.worker.commands", unit="{command}", description="Worker commands by kind and outcome"
        )
        self._seconds = m.create_histogram(
            "eda.worker.command.duration", unit="s", description="Worker command handling time"
        )

    @contextlib.contextmanager
    def handling(self, msg: Msg, cmd: WorkerCommand, worker: str, meta: Metadata) -> Iterator[None]:
        """Span and metrics around ``worker`` handling ``cmd``, brought by ``msg`` (exceptions
        propagate: nak or term). The span's parent is ``meta``'s trace context (the saga's); its message
        id is what caused the work (the command id, or the event id of an event acted on)."""
        kind = kind_of(cmd)
        attrs = {"worker": worker, "kind": kind}
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        started = time.perf_counter()
        outcome = "error"
        with (
            consumer_span(
                msg.subject,
                traceparent=meta.traceparent,
                tracestate=meta.tracestate,
                message_id=meta.causation_id or cmd.command_id,
                order_id=cmd.order_id,
                attributes={"eda.command.kind": kind, "messaging.nats.delivery_count": delivered},
            ) as span,
            recording_appends() as appended,
        ):
            try:
                yield
            except PermanentError:
                outcome = "invalid"
                raise
            else:
                refused = REFUSALS.intersection(appended)
                outcome = "refused" if refused else ("ok" if appended else "noop")
                span.set_attribute("eda.command.outcome", outcome)
                if refused:
                    mark_error(span, f"{kind} refused: {', '.join(sorted(refused))}")
            finally:
                self._commands.add(1, attrs | {"outcome": outcome})
                self._seconds.record(time.perf_counter() - started, attrs)
