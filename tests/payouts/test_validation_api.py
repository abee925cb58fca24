"""Bad input at the edge: INVALID_ARGUMENT naming the field, nothing written; billing down: UNAVAILABLE
and the cursor stays where it was. The payouts server here points at a billing nobody answers on."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from payouts_kit import field_of, rid, usd

from tests.conftest import auth_channel, security, token
from tests.payouts.conftest import payouts_database
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc
from tollgate.type.v1 import money_pb2

ADDRESS: dict[str, str] = {}


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
async def payouts(make_database) -> AsyncIterator[payouts_pb2_grpc.PayoutsServiceStub]:
    from payouts.app import start
    from payouts.config import Settings

    url = await payouts_database(make_database)
    dead = f"127.0.0.1:{_dead_port()}"
    running = await start(
        Settings(
            database_url=url,
            grpc_address="127.0.0.1:0",
            metrics_port=None,
            billing_address=dead,
            metering_address=dead,
            call_deadline_seconds=1,
            feed_poll_seconds=0,
            security=security("payouts"),
        )
    )
    ADDRESS["payouts"] = f"127.0.0.1:{running.port}"
    async with auth_channel(ADDRESS["payouts"]) as ch:
        yield payouts_pb2_grpc.PayoutsServiceStub(ch)
    await running.stop(0)


def payee(**kw) -> ppb.Payee:
    base = {"payee_id": "agency-7", "currency_code": "USD", "minimum_amount": usd("50.00"), "hold_days": 7}
    return ppb.Payee(**{**base, **kw})


async def rejected(call, request) -> tuple[grpc.StatusCode, str | None, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request)
    return err.value.code(), field_of(err.value), err.value.details()


BAD_PAYEES = [
    (payee(payee_id="Agency 7"), "payee.payee_id"),
    (payee(payee_id="agency\x00seven"), "payee.payee_id"),
    (payee(payee_id="a" * 65), "payee.payee_id"),
    (payee(payee_id="provider:"), "payee.payee_id"),
    (payee(payee_id="platform:tollgate"), "payee.payee_id"),
    (payee(currency_code="usd"), "payee.currency_code"),
    (payee(minimum_amount=usd("-1.00")), "payee.minimum_amount"),
    (payee(minimum_amount=usd("10.005")), "payee.minimum_amount"),
    (payee(minimum_amount=money_pb2.Money(currency_code="USD", units=10**15)), "payee.minimum_amount"),
    (payee(minimum_amount=money_pb2.Money(currency_code="USD", units=1, nanos=-5)), "payee.minimum_amount"),
    (
        payee(minimum_amount=money_pb2.Money(currency_code="EUR", units=1)),
        "payee.minimum_amount.currency_code",
    ),
    (payee(hold_days=366), "payee.hold_days"),
    (payee(hold_days=-1), "payee.hold_days"),
    (payee(schedule=99), "payee.schedule"),
    (payee(kind=ppb.PAYEE_KIND_PROVIDER), "payee.kind"),
    (payee(method_reference="x" * 257), "payee.method_reference"),
    (payee(method_reference="iban\x00"), "payee.method_reference"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_PAYEES)
async def test_bad_payee_is_invalid_argument_naming_the_field(payouts, bad, field):
    code, named, _ = await rejected(payouts.CreatePayee, ppb.CreatePayeeRequest(request_id=rid(), payee=bad))
    assert (code, named) == (grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_nothing_is_written_by_a_rejected_request(payouts):
    await rejected(payouts.CreatePayee, ppb.CreatePayeeRequest(request_id=rid(), payee=payee(hold_days=999)))
    code, _, _ = await rejected(
        payouts.GetPayee, ppb.GetPayeeRequest(payee_id="agency-7", currency_code="USD")
    )
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("call", "request_", "field"),
    [
        ("RunPayouts", ppb.RunPayoutsRequest(request_id=rid(), period="2026-13"), "period"),
        ("RunPayouts", ppb.RunPayoutsRequest(request_id=rid(), period="1999-12"), "period"),
        ("RunPayouts", ppb.RunPayoutsRequest(request_id=rid(), period="2999-12"), "period"),
        ("RunPayouts", ppb.RunPayoutsRequest(request_id="", period="2026-01"), "request_id"),
        ("RunPayouts", ppb.RunPayoutsRequest(request_id="r" * 129, period="2026-01"), "request_id"),
        ("ListTransfers", ppb.ListTransfersRequest(page_token="not-ours"), "page_token"),
        ("ListTransfers", ppb.ListTransfersRequest(page_token="eyJ4IjoxfQ"), "page_token"),
        ("ListTransfers", ppb.ListTransfersRequest(page_size=1001), "page_size"),
        ("ListTransfers", ppb.ListTransfersRequest(purpose=42), "purpose"),
        ("ListTransfers", ppb.ListTransfersRequest(source_id="s" * 161), "source_id"),
        ("ListPayouts", ppb.ListPayoutsRequest(state=7), "state"),
        ("ListPayouts", ppb.ListPayoutsRequest(page_token="x" * 5000), "page_token"),
        ("ListPayees", ppb.ListPayeesRequest(page_token="eyJwIjoxfQ"), "page_token"),
        ("MarkPayoutPaid", ppb.MarkPayoutPaidRequest(request_id=rid(), payout_id="p"), "external_reference"),
        (
            "MarkPayoutFailed",
            ppb.MarkPayoutFailedRequest(request_id=rid(), payout_id="p" * 161, reason="x"),
            "payout_id",
        ),
        (
            "GetStatement",
            ppb.GetStatementRequest(payee_id="agency-7", currency_code="USD", period="26-1"),
            "period",
        ),
        ("GetBalance", ppb.GetBalanceRequest(payee_id="agency-7", currency_code="US"), "currency_code"),
        ("ExportPayoutRun", ppb.ExportPayoutRunRequest(period=""), "period"),
        ("Reconcile", ppb.ReconcileRequest(period="2026-00"), "period"),
    ],
)
async def test_bad_request_is_invalid_argument_naming_the_field(payouts, call, request_, field):
    code, named, _ = await rejected(getattr(payouts, call), request_)
    assert (code, named) == (grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_same_request_id_with_another_body_is_already_exists(payouts):
    key = rid()
    await payouts.CreatePayee(ppb.CreatePayeeRequest(request_id=key, payee=payee(payee_id="studio-9")))
    again = await payouts.CreatePayee(
        ppb.CreatePayeeRequest(request_id=key, payee=payee(payee_id="studio-9"))
    )
    assert again.payee.payee_id == "studio-9"
    code, _, details = await rejected(
        payouts.CreatePayee,
        ppb.CreatePayeeRequest(request_id=key, payee=payee(payee_id="studio-9", hold_days=3)),
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and "request_id" in details
    stored = await payouts.GetPayee(ppb.GetPayeeRequest(payee_id="studio-9", currency_code="USD"))
    assert stored.payee.hold_days == 7


async def test_unknown_payout_is_not_found(payouts):
    code, _, _ = await rejected(
        payouts.MarkPayoutPaid,
        ppb.MarkPayoutPaidRequest(
            request_id=rid(), payout_id="po:2026-01:USD:nobody", external_reference="b"
        ),
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_billing_down_is_unavailable_and_nothing_moves(payouts):
    code, _, details = await rejected(payouts.SyncEarnings, ppb.SyncEarningsRequest(request_id=rid()))
    assert code == grpc.StatusCode.UNAVAILABLE and "billing" in details
    listed = await payouts.ListTransfers(ppb.ListTransfersRequest())
    assert list(listed.transfers) == []


async def test_reconcile_before_any_builder_needs_neither_billing_nor_metering(payouts):
    # No builder has been seen yet, so only the ledger checks run: they need neither.
    reply = await payouts.Reconcile(ppb.ReconcileRequest(period="2026-01"))
    assert reply.clean


async def test_a_builder_reads_its_own_payee_only_and_cannot_run_payouts(payouts):
    await payouts.CreatePayee(ppb.CreatePayeeRequest(request_id=rid(), payee=payee(payee_id="agency-42")))
    await payouts.CreatePayee(ppb.CreatePayeeRequest(request_id=rid(), payee=payee(payee_id="other-1")))
    address = ADDRESS["payouts"]
    async with auth_channel(address, credential=token("builder", "agency-42")) as ch:
        builder = payouts_pb2_grpc.PayoutsServiceStub(ch)
        own = await builder.GetPayee(ppb.GetPayeeRequest(currency_code="USD"))  # empty: its own
        assert own.payee.payee_id == "agency-42"
        balance = await builder.GetBalance(ppb.GetBalanceRequest(payee_id="agency-42", currency_code="USD"))
        assert len(balance.accounts) == 4
        for call, request in (
            (builder.GetBalance, ppb.GetBalanceRequest(payee_id="other-1", currency_code="USD")),
            (builder.GetBalance, ppb.GetBalanceRequest(payee_id="provider:all", currency_code="USD")),
            (builder.GetStatement, ppb.GetStatementRequest(payee_id="other-1", currency_code="USD",
                                                           period="2026-01")),
            (builder.RunPayouts, ppb.RunPayoutsRequest(request_id=rid(), period="2026-01")),
            (builder.Reconcile, ppb.ReconcileRequest(period="2026-01")),
        ):  # fmt: skip
            code, _, _ = await rejected(call, request)
            assert code == grpc.StatusCode.PERMISSION_DENIED
    async with grpc.aio.insecure_channel(address) as ch:
        code, _, _ = await rejected(
            payouts_pb2_grpc.PayoutsServiceStub(ch).GetPayee,
            ppb.GetPayeeRequest(payee_id="agency-42", currency_code="USD"),
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
