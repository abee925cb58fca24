"""Per-key request and token buckets, with the clock passed in (no sleeps)."""

from types import SimpleNamespace

import pytest

from common.errors import ResourceExhausted
from gateway.domain.keys import ApiKey, RateLimits
from gateway.domain.ratelimit import Bucket, retry_after_seconds
from gateway.service import state as service

# -- request bucket ------------------------------------------------------------------------------


def test_starts_full_and_admits_per_minute_requests_at_once():
    b = Bucket(60, now=0.0)
    assert [b.take(0.0) for _ in range(60)] == [0.0] * 60
    assert b.take(0.0) == 1.0  # empty: one request a second comes back


def test_refills_continuously_at_per_minute_over_sixty_a_second():
    b = Bucket(120, now=0.0)  # 2 a second
    for _ in range(120):
        b.take(0.0)
    assert b.take(0.25) == 0.25  # 0.5 in the bucket: a quarter second until a whole one
    assert b.level == 0.5  # a refusal takes nothing
    assert b.take(0.5) == 0.0  # exactly 1 refilled
    assert b.level == 0.0
    assert b.take(2.0) == 0.0  # 3 refilled, 1 taken
    assert b.level == 2.0


def test_refill_is_capped_at_capacity():
    b = Bucket(30, now=0.0)
    b.take(0.0)
    assert b.take(3600.0) == 0.0
    assert b.level == 29.0  # full (30) after an hour, not 1,830
    for _ in range(29):
        assert b.take(3600.0) == 0.0
    assert b.take(3600.0) == 2.0  # 0.5 a second


def test_a_refusal_says_how_long_to_wait_at_least_a_millisecond():
    b = Bucket(60, now=0.0)
    for _ in range(60):
        b.take(0.0)
    assert b.take(0.75) == 0.25
    assert b.take(0.9999995) == 0.001  # 0.5 microseconds short: reported as the 1 ms floor


def test_take_of_several_units_waits_for_all_of_them():
    b = Bucket(60, now=0.0)
    assert b.take(0.0, 50.0) == 0.0
    assert b.take(0.0, 20.0) == 10.0  # 10 left, 10 missing at 1 a second
    assert b.level == 10.0


def test_a_clock_going_backwards_neither_refills_nor_drains():
    b = Bucket(60, now=10.0)
    for _ in range(60):
        b.take(10.0)
    assert b.take(5.0) == 1.0
    assert b.level == 0.0 and b.last == 10.0


# -- token bucket (post-paid) --------------------------------------------------------------------


def test_token_bucket_admits_while_above_zero_and_goes_negative_after_charging():
    b = Bucket(600, now=0.0)  # 10 tokens a second
    assert b.wait_until_positive(0.0) == 0.0
    b.debit(0.0, 599.5)
    assert b.wait_until_positive(0.0) == 0.0  # 0.5 left is still above zero: admitted
    b.debit(0.0, 100.5)  # that request turned out to use 100.5 tokens
    assert b.level == -100.0
    assert b.wait_until_positive(0.0) == 10.1  # (100 + 1) / 10: until a whole token is back
    assert b.wait_until_positive(10.0) == 0.1  # level 0 is not above zero
    assert b.wait_until_positive(10.05) == 0.0  # 0.5: admitted


def test_debit_refills_first_so_elapsed_time_is_not_lost():
    b = Bucket(600, now=0.0)
    b.debit(0.0, 600.0)
    b.debit(30.0, 100.0)  # 300 refilled over 30 s, then 100 charged
    assert b.level == 200.0


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wait,seconds", [(0.0, 1), (0.001, 1), (0.5, 1), (1.0, 1), (1.001, 2), (10.1, 11), (59.0, 59), (60.2, 61)]
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait, seconds):
    assert retry_after_seconds(wait) == seconds


# -- the per-key limiter that uses the buckets, on an injected clock ----------------------------


@pytest.fixture
def clock(monkeypatch):
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(service, "time", SimpleNamespace(monotonic=lambda: now.t))
    return now


def key(rpm: int = 0, tpm: int = 0) -> ApiKey:
    return ApiKey(
        id="key_1",
        builder_id="b",
        app_id="a",
        customer_id="c",
        display_name="",
        rate_limits=RateLimits(requests_per_minute=rpm, tokens_per_minute=tpm),
    )


def test_limiter_rejection_carries_the_retry_after(clock):
    limiter = service.Limiter()
    k = key(rpm=2)
    limiter.admit(k)
    limiter.admit(k)
    clock.t += 10.0  # 1/3 of a request refilled: 20 s to go
    with pytest.raises(ResourceExhausted) as err:
        limiter.admit(k)
    assert err.value.retry_after_seconds == 20.0
    assert "2 requests per minute" in err.value.message
    assert retry_after_seconds(err.value.retry_after_seconds) == 20
    clock.t += 20.0
    limiter.admit(k)


def test_limiter_token_bucket_delays_the_requests_after_an_overspend(clock):
    limiter = service.Limiter()
    k = key(tpm=60)  # 1 token a second
    limiter.admit(k)
    limiter.charge_tokens(k, 90)  # 30 over
    with pytest.raises(ResourceExhausted) as err:
        limiter.admit(k)
    assert err.value.retry_after_seconds == 31.0  # (30 + 1) / 1
    assert "60 tokens per minute" in err.value.message
    clock.t += 31.0
    limiter.admit(k)


def test_a_key_without_limits_is_never_limited(clock):
    limiter = service.Limiter()
    k = key()
    for _ in range(10_000):
        limiter.admit(k)
