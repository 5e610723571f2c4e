"""The rate limit's sliding-window counters (app.api.ratewindow) on a hand-driven clock: the weighted
count of the previous window, Retry-After, per-client buckets and the sweep of idle clients."""

from __future__ import annotations

import limits

from app.api.ratewindow import SlidingWindows


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_window_admits_its_amount_then_refuses_and_clients_are_apart() -> None:
    clock, item = Clock(), limits.parse("3/minute")
    w = SlidingWindows(clock)
    assert [w.hit(item, "a") for _ in range(4)] == [True, True, True, False]
    assert w.hit(item, "b")  # another client, another bucket
    assert w.hit(limits.parse("5/minute"), "a")  # another limit, another bucket


def test_the_previous_window_fades_as_the_window_slides() -> None:
    clock, item = Clock(960.0), limits.parse("4/minute")  # 960 = the start of a window (16 * 60)
    w = SlidingWindows(clock)
    assert all(w.hit(item, "a") for _ in range(4))
    clock.t = 1020.0  # the next window's start: the previous 4 still weigh fully
    assert not w.hit(item, "a")
    clock.t = 1035.0  # a quarter in: 4 * 0.75 = 3 → one more fits
    assert w.hit(item, "a")
    assert not w.hit(item, "a")  # 3 + 1 = 4
    clock.t = 1080.0 + 59.0  # two windows later: the first window no longer counts at all
    assert w.hit(item, "a")


def test_retry_after_is_when_a_hit_would_be_admitted_again() -> None:
    clock, item = Clock(960.0), limits.parse("4/minute")
    w = SlidingWindows(clock)
    for _ in range(4):
        w.hit(item, "a")
    clock.t = 970.0  # the current window alone is full: it must end (then its 4 weigh just under 4)
    after = w.retry_after(item, "a")
    assert after == 51
    clock.t += after - 1
    assert not w.hit(item, "a")
    clock.t += 1
    assert w.hit(item, "a")
    assert not w.hit(item, "a")
    # refused on the previous window's weight alone: it fades by one every 60/4 = 15 s
    w2 = SlidingWindows(clock)
    clock.t = 960.0
    for _ in range(4):
        w2.hit(item, "b")
    clock.t = 1020.0  # the next window: the previous 4 weigh fully
    assert not w2.hit(item, "b")
    assert w2.retry_after(item, "b") == 1  # a second later they weigh 4 * 59/60 < 4
    clock.t = 1022.5
    assert w2.hit(item, "b")  # 4 * 57.5/60 = 3.83
    assert not w2.hit(item, "b")  # 3.83 + 1
    wait = w2.retry_after(item, "b")  # 4.83 falls by 1/15 a second: under 4 after 12.5 s
    assert wait == 13
    clock.t += wait - 1
    assert not w2.hit(item, "b")
    clock.t += 1
    assert w2.hit(item, "b")


def test_idle_clients_are_forgotten() -> None:
    clock, item = Clock(960.0), limits.parse("2/second")
    w = SlidingWindows(clock)
    for i in range(100):
        w.hit(item, f"client-{i}")
    assert len(w) == 100
    clock.t += 3  # two windows have passed for all of them
    w.hit(item, "late")
    assert len(w) == 1
