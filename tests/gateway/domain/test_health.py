"""The per-offering circuit breaker and latency EWMA, driven by explicit clock values (no sleeps)."""

import pytest

from gateway.domain.health import CLOSED, HALF_OPEN, OPEN, BreakerPolicy, RouteHealth

POLICY = BreakerPolicy(failure_threshold=3, cooldown_seconds=10.0, ewma_alpha=0.2)


def fail(h: RouteHealth, now: float, reason: str = "http 503") -> None:
    h.record_failure(now, wall_now=1_700_000_000.0 + now, reason=reason)


def opened_at_100() -> RouteHealth:
    h = RouteHealth(POLICY)
    for t in (98.0, 99.0, 100.0):
        assert h.try_acquire(t)
        fail(h, t)
    assert h.state == OPEN and h.opened_at == 100.0
    return h


def test_defaults_match_the_documented_settings():
    p = BreakerPolicy()
    assert (p.failure_threshold, p.cooldown_seconds, p.ewma_alpha) == (3, 10.0, 0.2)


def test_a_new_breaker_is_closed_and_admits_everything():
    h = RouteHealth(POLICY)
    assert h.state == CLOSED and h.view_state(0.0) == CLOSED
    assert all(h.try_acquire(float(t)) for t in range(100))


def test_opens_on_the_threshold_th_consecutive_failure_not_before():
    h = RouteHealth(POLICY)
    fail(h, 1.0)
    fail(h, 2.0)
    assert h.state == CLOSED and h.consecutive_failures == 2
    assert h.try_acquire(2.0)
    fail(h, 3.0, reason="connect refused")
    assert h.state == OPEN
    assert h.opened_at == 3.0
    assert h.open_wall_time == 1_700_000_003.0
    assert h.last_error == "connect refused"
    assert h.failure_count == 3
    assert not h.try_acquire(3.0)


def test_a_success_in_between_resets_the_count():
    h = RouteHealth(POLICY)
    fail(h, 1.0)
    fail(h, 2.0)
    h.record_success(50.0)
    assert h.consecutive_failures == 0
    fail(h, 3.0)
    fail(h, 4.0)
    assert h.state == CLOSED  # 2 consecutive, although 4 failures in all
    assert h.failure_count == 4 and h.success_count == 1
    fail(h, 5.0)
    assert h.state == OPEN and h.opened_at == 5.0


def test_threshold_of_one_opens_on_the_first_failure():
    h = RouteHealth(BreakerPolicy(failure_threshold=1))
    fail(h, 7.0)
    assert h.state == OPEN and h.opened_at == 7.0


def test_open_rejects_until_the_cooldown_has_passed():
    h = opened_at_100()
    for t in (100.0, 105.0, 109.999):
        assert not h.try_acquire(t)
        assert h.view_state(t) == OPEN
    assert h.state == OPEN  # refusals change nothing
    assert h.view_state(110.0) == HALF_OPEN  # readers see half-open before anyone asks


def test_half_open_admits_exactly_one_probe():
    h = opened_at_100()
    assert h.try_acquire(110.0)  # cooldown reached exactly: the probe
    assert h.state == HALF_OPEN and h.probe_in_flight
    assert not h.try_acquire(110.0)  # a second caller while the probe is out
    assert not h.try_acquire(500.0)  # however long the probe takes
    assert h.view_state(500.0) == HALF_OPEN


def test_probe_success_closes_the_breaker():
    h = opened_at_100()
    assert h.try_acquire(110.0)
    h.record_success(80.0)
    assert h.state == CLOSED and h.consecutive_failures == 0 and not h.probe_in_flight
    assert h.try_acquire(110.0) and h.try_acquire(110.0)
    # closed again means the full threshold is needed to re-open
    fail(h, 111.0)
    fail(h, 112.0)
    assert h.state == CLOSED
    fail(h, 113.0)
    assert h.state == OPEN and h.opened_at == 113.0


def test_probe_failure_reopens_for_another_full_cooldown():
    h = opened_at_100()
    assert h.try_acquire(112.0)
    fail(h, 112.5, reason="timeout")
    assert h.state == OPEN
    assert h.opened_at == 112.5  # the cooldown restarts from the probe's failure
    assert h.last_error == "timeout"
    assert not h.try_acquire(113.0)
    assert not h.try_acquire(122.499)
    assert h.try_acquire(122.5)  # next probe
    assert not h.try_acquire(122.5)


def test_release_frees_the_probe_slot_without_a_verdict():
    h = opened_at_100()
    assert h.try_acquire(110.0)
    h.release()  # the caller went away / a 4xx: neither success nor failure
    assert h.state == HALF_OPEN
    assert h.try_acquire(110.1)  # someone else may probe
    assert not h.try_acquire(110.1)


def test_a_late_failure_while_open_does_not_extend_the_cooldown():
    h = opened_at_100()
    fail(h, 104.0)  # an attempt admitted before the breaker opened, failing afterwards
    assert h.state == OPEN and h.opened_at == 100.0
    assert h.try_acquire(110.0)


def test_ewma_first_sample_is_taken_as_is_then_weighted_by_alpha():
    h = RouteHealth(BreakerPolicy(ewma_alpha=0.25))  # exact in binary floating point
    assert h.ewma_ms == 0.0
    h.record_success(100.0)
    assert h.ewma_ms == 100.0
    h.record_success(200.0)
    assert h.ewma_ms == 125.0  # 0.25 x 200 + 0.75 x 100
    h.record_success(25.0)
    assert h.ewma_ms == 100.0  # 0.25 x 25 + 0.75 x 125


def test_ewma_with_the_default_alpha():
    h = RouteHealth(POLICY)
    for sample in (100.0, 200.0, 50.0):
        h.record_success(sample)
    # 100 -> 0.2 x 200 + 0.8 x 100 = 120 -> 0.2 x 50 + 0.8 x 120 = 106
    assert h.ewma_ms == pytest.approx(106.0, rel=1e-12)


def test_failures_do_not_move_the_latency_average():
    h = RouteHealth(POLICY)
    h.record_success(100.0)
    fail(h, 1.0)
    assert h.ewma_ms == 100.0
