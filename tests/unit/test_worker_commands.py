"""The saga↔worker wire contract across an upgrade: commands queued in ``COMMANDS`` by the previous
version (one struct with ``kind: str`` and every field on every kind) decode as the typed commands, and
a worker of the previous version reads a new command's fields."""

from __future__ import annotations

import msgspec
import pytest

from app.workers import commands as wire


class PreviousItem(msgspec.Struct, frozen=True):
    product_id: int
    quantity: int


class PreviousCommand(msgspec.Struct, frozen=True, kw_only=True):
    """``wire.WorkerCommand`` as the previous version encoded and decoded it."""

    command_id: str
    kind: str
    order_id: int
    user_id: int = 0
    amount: str = "0"
    items: tuple[PreviousItem, ...] = ()


ITEMS = (wire.Item(1, 2), wire.Item(3, 4))
NEW: list[tuple[wire.WorkerName, wire.WorkerCommand]] = [
    ("inventory", wire.Reserve(command_id="5:reserve:1", order_id=5, items=ITEMS)),
    ("inventory", wire.Release(command_id="5:release:1", order_id=5, items=ITEMS)),
    ("inventory", wire.Commit(command_id="5:commit:1", order_id=5, items=ITEMS)),
    ("payment", wire.Charge(command_id="5:charge:1", order_id=5, amount="19.99")),
    ("payment", wire.Refund(command_id="5:refund:1", order_id=5)),
    ("shipping", wire.Ship(command_id="5:ship:1", order_id=5, user_id=42)),
    ("shipping", wire.Recall(command_id="5:recall:1", order_id=5)),
]


def previous_of(cmd: wire.WorkerCommand) -> PreviousCommand:
    """What the previous saga sent for the same step: every field, whatever the kind."""
    items = tuple(PreviousItem(i.product_id, i.quantity) for i in ITEMS)
    return PreviousCommand(
        command_id=cmd.command_id, kind=wire.kind_of(cmd), order_id=5, user_id=42, amount="19.99", items=items
    )


@pytest.mark.parametrize(("worker", "cmd"), NEW, ids=[wire.kind_of(c) for _, c in NEW])
def test_a_command_queued_by_the_previous_version_decodes_as_the_typed_one(
    worker: wire.WorkerName, cmd: wire.WorkerCommand
) -> None:
    old = msgspec.json.encode(previous_of(cmd))
    assert old.startswith(b'{"command_id"')  # the tag is not the first field there
    assert wire.decode_command(old, worker) == cmd


@pytest.mark.parametrize(("worker", "cmd"), NEW, ids=[wire.kind_of(c) for _, c in NEW])
def test_the_previous_worker_reads_what_its_kind_needs_from_a_new_command(
    worker: wire.WorkerName, cmd: wire.WorkerCommand
) -> None:
    old = msgspec.json.decode(wire.encode_command(cmd), type=PreviousCommand)
    assert (old.kind, old.command_id, old.order_id) == (wire.kind_of(cmd), cmd.command_id, 5)
    if isinstance(cmd, wire.Reserve | wire.Release | wire.Commit):
        assert [(i.product_id, i.quantity) for i in old.items] == [(1, 2), (3, 4)]
    if isinstance(cmd, wire.Charge):
        assert old.amount == "19.99"
    if isinstance(cmd, wire.Ship):
        assert old.user_id == 42


@pytest.mark.parametrize(("worker", "cmd"), NEW, ids=[wire.kind_of(c) for _, c in NEW])
def test_only_the_addressed_worker_accepts_a_command(
    worker: wire.WorkerName, cmd: wire.WorkerCommand
) -> None:
    data = wire.encode_command(cmd)
    assert wire.decode_command(data, worker) == cmd
    for other in {"inventory", "payment", "shipping"} - {worker}:
        with pytest.raises(msgspec.DecodeError):
            wire.decode_command(data, other)  # type: ignore[arg-type]


def test_an_unknown_kind_is_not_a_command() -> None:
    with pytest.raises(msgspec.DecodeError):
        wire.decode_command(b'{"kind": "teleport", "command_id": "x", "order_id": 1}', "shipping")
