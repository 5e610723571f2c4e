"""The projector never acknowledges past a lost delivery: with ack policy "all", applying and acking the
message after a gap in the consumer's delivery sequence (a consumer leader change can lose deliveries in
flight) would acknowledge — and skip forever — the lost ones. It applies what came in order and restarts
the consumer from the checkpoint instead (``Projector._consume`` applies ``deliveries[:in_order(...)]``
and raises ``DeliveryGap`` when that is not all). Found by tests/chaos/test_leader_kill.py (read model
missing events after EVENTS leader kills), which checks the whole projector against a real cluster."""

from __future__ import annotations

from app.readmodel.projector import in_order


def applied(delivered: int, deliveries: list[tuple[int, int]]) -> list[int]:
    """The stream sequences the projector applies from ``(stream seq, delivery seq)`` deliveries."""
    n = in_order(delivered, [dseq for _, dseq in deliveries])
    return [sseq for sseq, _ in deliveries[:n]]


def test_deliveries_in_order_are_all_applied() -> None:
    assert applied(0, [(11, 1), (12, 2), (13, 3)]) == [11, 12, 13]
    assert applied(3, [(14, 4), (20, 5)]) == [14, 20]  # stream gaps are fine (other subjects)


def test_a_lost_delivery_stops_before_the_gap() -> None:
    # deliveries 4 and 5 (stream 14, 15) were lost in a leader change; 6 must not be applied or acked
    assert applied(0, [(11, 1), (12, 2), (13, 3), (16, 6), (17, 7)]) == [11, 12, 13]


def test_a_delivery_sequence_going_back_restarts_too() -> None:
    assert applied(0, [(11, 1), (12, 2), (12, 2), (13, 3)]) == [11, 12]


def test_a_gap_at_the_start_applies_nothing() -> None:
    assert applied(0, [(15, 3), (16, 4)]) == []
    assert applied(5, [(15, 5)]) == []  # a redelivery of the last one counts as a gap as well
