"""Spend leases over real gRPC and PostgreSQL: concurrent gateway processes never get more than a cap
grants (to the nano), thresholds and the hard cap alert exactly once, and retries return the first
reply. (Expiry: test_spend_alerts_api.py, with 2 s leases.)"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest
from billing_kit import dec, rid
from spend_kit import create_customer, money, set_control, spend_stack, sql

from tollgate.billing.v1 import spend_pb2 as spb

BUILDER = "spend-lease"


@pytest.fixture(scope="module")
async def stack(make_database, fast_metering_address):
    async with spend_stack(
        make_database,
        fast_metering_address,
        spend_lease_seconds=60,
        margin_watch_seconds=0,
        pool_size=20,
    ) as s:
        for cid in ("cap", "thr", "hard", "idem", "del"):
            await create_customer(s.billing, BUILDER, cid)
        yield s


def acquire(control: spb.SpendStatus, amount: str, minimum: str = "0", request_id: str = "") -> object:
    return spb.AcquireSpendLeaseRequest(
        request_id=request_id or rid(),
        builder_id=BUILDER,
        customer_id=control.control.customer_id,
        control_id=control.control.id,
        holder="gw-1",
        amount=money(amount),
        minimum=money(minimum),
    )


def report(lease_id: str, consumed: str, release: bool = False, request_id: str = "") -> object:
    return spb.ReportSpendLeaseRequest(
        request_id=request_id or rid(),
        builder_id=BUILDER,
        lease_id=lease_id,
        consumed=money(consumed),
        release=release,
    )


async def status_of(stack, customer: str) -> spb.SpendStatus:
    listed = await stack.spend.ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id=customer)
    )
    (only,) = listed.controls
    return only


async def alerts_of(stack, customer: str) -> list[spb.Alert]:
    reply = await stack.spend.ListAlerts(spb.ListAlertsRequest(builder_id=BUILDER, customer_id=customer))
    return list(reply.alerts)


async def test_concurrent_grants_never_pass_the_cap(stack) -> None:
    ctl = await set_control(stack.spend, BUILDER, "cap", hard_cap=money("10"))
    ask = "0.370000001"

    async def one_request() -> Decimal:
        reply = await stack.spend.AcquireSpendLease(acquire(ctl, ask, ask))
        if not reply.HasField("lease"):
            assert reply.refused.control_id == ctl.control.id
            return Decimal(0)
        granted = dec(reply.lease.granted)
        done = await stack.spend.ReportSpendLease(report(reply.lease.id, str(granted), release=True))
        assert done.lease.state == spb.SPEND_LEASE_STATE_RELEASED
        return granted

    grants = await asyncio.gather(*(one_request() for _ in range(64)))
    # 27 x 0.370000001 = 9.990000027 fits under 10; a 28th would need 0.009999973 more than is left.
    assert sorted(grants, reverse=True)[:28] == [Decimal(ask)] * 27 + [Decimal(0)]
    assert sum(grants) == Decimal("9.990000027")
    s = await status_of(stack, "cap")
    assert dec(s.spent) == Decimal("9.990000027")
    assert dec(s.held) == 0 and s.active_lease_count == 0
    assert dec(s.remaining) == Decimal("0.009999973")


async def test_thresholds_alert_once_each_under_concurrent_reports(stack) -> None:
    ctl = await set_control(
        stack.spend, BUILDER, "thr", alert_budget=money("100"), threshold_percents=[25, 50, 75, 100]
    )
    leases = [(await stack.spend.AcquireSpendLease(acquire(ctl, "4"))).lease for _ in range(32)]
    assert all(dec(x.granted) == 4 for x in leases)  # no hard cap: the amount asked
    await asyncio.gather(*(stack.spend.ReportSpendLease(report(x.id, "4", release=True)) for x in leases))
    s = await status_of(stack, "thr")
    assert dec(s.spent) == 128 and dec(s.held) == 0
    assert list(s.reached_threshold_percents) == [25, 50, 75, 100]
    alerts = await alerts_of(stack, "thr")
    assert sorted((a.threshold_percent, dec(a.limit)) for a in alerts) == [
        (25, 25),
        (50, 50),
        (75, 75),
        (100, 100),
    ]
    # Newest first, paged.
    first = await stack.spend.ListAlerts(
        spb.ListAlertsRequest(builder_id=BUILDER, customer_id="thr", page_size=3)
    )
    rest = await stack.spend.ListAlerts(
        spb.ListAlertsRequest(
            builder_id=BUILDER, customer_id="thr", page_size=3, page_token=first.next_page_token
        )
    )
    paged = list(first.alerts) + list(rest.alerts)
    assert [a.id for a in paged] == [a.id for a in alerts] and not rest.next_page_token
    times = [a.create_time.ToDatetime() for a in paged]
    assert times == sorted(times, reverse=True)
    for a in alerts:
        assert a.kind == spb.ALERT_KIND_SPEND_THRESHOLD and a.control_id == ctl.control.id
        # the spend when it was raised: the first report at or above the threshold, a multiple of 4.
        assert dec(a.limit) <= dec(a.amount) < dec(a.limit) + 4 and dec(a.amount) % 4 == 0


async def test_hard_cap_refuses_and_alerts_once(stack) -> None:
    await sql(
        stack.database_url,
        "INSERT INTO webhook_endpoints (builder_id, url, secret) VALUES (:b, :u, 's')",
        b=BUILDER,
        u="http://127.0.0.1:9/alerts",
    )
    ctl = await set_control(
        stack.spend,
        BUILDER,
        "hard",
        hard_cap=money("1.50"),
        on_cap=spb.CAP_ACTION_DEGRADE,
        degrade_model="small-model",
    )
    first = await stack.spend.AcquireSpendLease(acquire(ctl, "1", "0.2"))
    assert dec(first.lease.granted) == 1
    partial = await stack.spend.AcquireSpendLease(acquire(ctl, "1", "0.2"))
    assert dec(partial.lease.granted) == Decimal("0.5")  # what was left, above the minimum
    refusals = await asyncio.gather(
        *(stack.spend.AcquireSpendLease(acquire(ctl, "1", "0.2")) for _ in range(5))
    )
    for r in refusals:
        assert not r.HasField("lease")
        c = r.refused
        assert c.control_id == ctl.control.id and c.scope.kind == spb.SPEND_SCOPE_KIND_CUSTOMER
        assert dec(c.hard_cap) == Decimal("1.5") and dec(c.spent) == 0 and dec(c.held) == Decimal("1.5")
        assert c.on_cap == spb.CAP_ACTION_DEGRADE and c.degrade_model == "small-model"
        assert c.reset_time == ctl.period_end_time
    (alert,) = await alerts_of(stack, "hard")
    assert alert.kind == spb.ALERT_KIND_HARD_CAP_REACHED and dec(alert.limit) == Decimal("1.5")
    assert alert.message == (
        "a request of hard was refused at the hard cap of 1.5 USD of its customer control: 0 USD spent"
    )
    # The alert queued its webhook delivery in the same transaction.
    rows = await sql(
        stack.database_url, "SELECT url, state FROM webhook_deliveries WHERE alert_id = :a", a=alert.id
    )
    assert rows == [("http://127.0.0.1:9/alerts", "pending")]


async def test_retries_return_the_first_reply(stack) -> None:
    ctl = await set_control(stack.spend, BUILDER, "idem", hard_cap=money("2"))
    ask = acquire(ctl, "1.25", request_id="acq-1")
    first = await stack.spend.AcquireSpendLease(ask)
    assert await stack.spend.AcquireSpendLease(ask) == first
    s = await status_of(stack, "idem")
    assert dec(s.held) == Decimal("1.25") and s.active_lease_count == 1  # granted once
    rep = report(first.lease.id, "0.5", request_id="rep-1")
    done = await stack.spend.ReportSpendLease(rep)
    assert await stack.spend.ReportSpendLease(rep) == done
    # A lower cumulative report changes nothing.
    lower = await stack.spend.ReportSpendLease(report(first.lease.id, "0.2"))
    assert dec(lower.lease.consumed) == Decimal("0.5")
    s = await status_of(stack, "idem")
    assert (dec(s.spent), dec(s.held)) == (Decimal("0.5"), Decimal("0.75"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.spend.ReportSpendLease(report(first.lease.id, "0.9", request_id="rep-1"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.spend.AcquireSpendLease(
            spb.AcquireSpendLeaseRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id="idem",
                control_id=ctl.control.id,
                holder="gw-1",
                amount=money("1", "EUR"),
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "amount must be in the customer's currency USD, got 'EUR'"


async def test_delete_during_acquires_and_reports_is_clean(stack) -> None:
    ctl = await set_control(stack.spend, BUILDER, "del", hard_cap=money("100"))
    held = [(await stack.spend.AcquireSpendLease(acquire(ctl, "1"))).lease for _ in range(8)]

    async def outcome(call) -> str:
        try:
            await call
            return "OK"
        except grpc.aio.AioRpcError as exc:
            return exc.code().name

    calls = [stack.spend.AcquireSpendLease(acquire(ctl, "1")) for _ in range(16)]
    calls += [stack.spend.ReportSpendLease(report(x.id, "0.5", release=True)) for x in held]
    calls.insert(
        12,
        stack.spend.DeleteSpendControl(
            spb.DeleteSpendControlRequest(request_id=rid(), builder_id=BUILDER, control_id=ctl.control.id)
        ),
    )
    results = await asyncio.gather(*(outcome(c) for c in calls))
    assert set(results) <= {"OK", "NOT_FOUND"} and results[12] == "OK"
    listed = await stack.spend.ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id="del")
    )
    assert list(listed.controls) == []
    rows = await sql(
        stack.database_url, "SELECT count(*) FROM spend_leases WHERE control_id = :c", c=ctl.control.id
    )
    assert rows == [(0,)]
