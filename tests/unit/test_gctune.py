"""GC tuning of the roles: the start-up heap frozen, the gen-0 threshold raised; 0 changes nothing."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app.process.gctune import tune_gc
from app.settings import Settings


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_the_heap_and_raises_the_young_threshold() -> None:
    tune_gc(Settings().gc_gen0_threshold)
    assert gc.get_threshold()[0] == 20_000
    assert gc.get_freeze_count() > 1000


def test_zero_leaves_the_collector_alone() -> None:
    gc.unfreeze()  # an in-process API of an earlier test may have tuned this process
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cyclic_garbage_is_still_collected_without_an_explicit_collect() -> None:
    tune_gc(1_000)

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    keep = [{} for _ in range(5_000)]  # allocations past the threshold trigger a young collection
    assert gone() is None
    assert len(keep) == 5_000
