"""The PayoutsService gRPC servicer: validate and decode the request (every limit of the proto
comments is enforced here, in one place), call the service, encode the reply.

Errors are common.errors raised here, by the service or the domain; the shared interceptor maps them
to status codes with the offending field. A LedgerError (a posting the ledger refuses) is
FAILED_PRECONDITION.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import wraps
from typing import Any

import grpc

from common.auth import Access
from common.errors import FailedPrecondition, InvalidArgument
from common.money import from_money, to_money, to_timestamp
from payouts.domain.ledger import PLATFORM, LedgerError, Purpose, Reason
from payouts.domain.money import MAX_AMOUNT, is_whole_minor_units
from payouts.domain.periods import Period
from payouts.domain.statement import Statement, statement_csv
from payouts.service import PayeeInput, PayoutsService
from tollgate.payouts.v1 import payouts_pb2 as pb
from tollgate.payouts.v1 import payouts_pb2_grpc

# A builder caller may read its own payee (payee_id is its builder id); everything else is the operator's.
ACCESS: dict[str, Access] = {
    "CreatePayee": Access.operator_only(),
    "UpdatePayee": Access.operator_only(),
    "GetPayee": Access.for_builder("payee_id"),
    "ListPayees": Access.operator_only(),
    "GetBalance": Access.for_builder("payee_id"),
    "ListTransfers": Access.for_builder("payee_id"),
    "SyncEarnings": Access.operator_only(),
    "ReleaseHolds": Access.operator_only(),
    "RunPayouts": Access.operator_only(),
    "ListPayouts": Access.for_builder("payee_id"),
    "MarkPayoutPaid": Access.operator_only(),
    "MarkPayoutFailed": Access.operator_only(),
    "ExportPayoutRun": Access.operator_only(),
    "GetStatement": Access.for_builder("payee_id"),
    "ExportStatement": Access.for_builder("payee_id"),
    "Reconcile": Access.operator_only(),
}

# ---- validation: the limits written in payouts.proto ----------------------------------------------

_BUILDER_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_PROVIDER_ID = re.compile(r"provider:[a-z0-9][a-z0-9_.-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TOKEN = 2048


def _text(value: str, field: str, *, max_len: int, required: bool = True) -> str:
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required", field=field)
        return value
    if len(value) > max_len:
        raise InvalidArgument(f"{field} must be at most {max_len} characters", field=field)
    if _CONTROL.search(value):
        raise InvalidArgument(f"{field} must not contain control characters (NUL included)", field=field)
    return value


def _request_id(value: str) -> str:
    return _text(value, "request_id", max_len=128)


def _payee_id(value: str, field: str = "payee_id", *, allow_platform: bool = False) -> str:
    if allow_platform and value == PLATFORM:
        return value
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > 80 or not (_BUILDER_ID.fullmatch(value) or _PROVIDER_ID.fullmatch(value)):
        raise InvalidArgument(
            f"{field} must be a builder id (1 to 64 of a-z 0-9 _ . -) or provider:<name>", field=field
        )
    return value


def _optional_payee(value: str, *, allow_platform: bool = False) -> str | None:
    return _payee_id(value, allow_platform=allow_platform) if value else None


def _currency(value: str, field: str = "currency_code", *, required: bool = True) -> str:
    if not value and not required:
        return value
    if not _CURRENCY.fullmatch(value):
        raise InvalidArgument(f"{field} must be three upper-case letters", field=field)
    return value


def _period(value: str, field: str = "period", *, required: bool = True) -> Period | None:
    if not value and not required:
        return None
    try:
        return Period.parse(value)
    except ValueError as exc:
        raise InvalidArgument(f"{field} {exc}", field=field) from None


def _token(value: str) -> str:
    if len(value) > _MAX_TOKEN or _CONTROL.search(value):
        raise InvalidArgument("page_token is not a token this service issued", field="page_token")
    return value


def _enum(value: int, allowed: dict[int, Any], field: str) -> Any:
    if value not in allowed:
        raise InvalidArgument(f"{field} has an unknown value {value}", field=field)
    return allowed[value]


_SCHEDULES = {pb.PAYOUT_SCHEDULE_UNSPECIFIED: "monthly", pb.PAYOUT_SCHEDULE_MONTHLY: "monthly"}
_PURPOSES = {pb.ACCOUNT_PURPOSE_UNSPECIFIED: None} | {
    getattr(pb, f"ACCOUNT_PURPOSE_{p.name}"): p for p in Purpose
}
_STATES = {
    pb.PAYOUT_STATE_UNSPECIFIED: None,
    pb.PAYOUT_STATE_PENDING: "pending",
    pb.PAYOUT_STATE_PAID: "paid",
    pb.PAYOUT_STATE_FAILED: "failed",
}
_KINDS = {"builder": pb.PAYEE_KIND_BUILDER, "provider": pb.PAYEE_KIND_PROVIDER}
_PURPOSE_PB = {p: getattr(pb, f"ACCOUNT_PURPOSE_{p.name}") for p in Purpose}
_REASON_PB = {r: getattr(pb, f"TRANSFER_REASON_{r.name}") for r in Reason}
_STATE_PB = {
    "pending": pb.PAYOUT_STATE_PENDING,
    "paid": pb.PAYOUT_STATE_PAID,
    "failed": pb.PAYOUT_STATE_FAILED,
}


def _payee_input(p: pb.Payee) -> PayeeInput:
    payee_id = _payee_id(p.payee_id, "payee.payee_id")
    currency = _currency(p.currency_code, "payee.currency_code")
    kind = "provider" if payee_id.startswith("provider:") else "builder"
    if p.kind != pb.PAYEE_KIND_UNSPECIFIED and p.kind != _KINDS[kind]:
        raise InvalidArgument(f"payee.kind must be {kind} for payee id {payee_id}", field="payee.kind")
    try:
        minimum = from_money(p.minimum_amount)
    except ValueError as exc:
        raise InvalidArgument(f"payee.minimum_amount: {exc}", field="payee.minimum_amount") from None
    if p.minimum_amount.currency_code and p.minimum_amount.currency_code != currency:
        raise InvalidArgument(
            f"payee.minimum_amount must be in {currency}", field="payee.minimum_amount.currency_code"
        )
    if minimum < 0 or minimum > MAX_AMOUNT:
        raise InvalidArgument(
            "payee.minimum_amount must be between 0 and 10^12", field="payee.minimum_amount"
        )
    if not is_whole_minor_units(minimum, currency):
        raise InvalidArgument(
            f"payee.minimum_amount must be whole {currency} minor units", field="payee.minimum_amount"
        )
    if not 0 <= p.hold_days <= 365:
        raise InvalidArgument("payee.hold_days must be between 0 and 365", field="payee.hold_days")
    return PayeeInput(
        payee_id=payee_id,
        currency=currency,
        kind=kind,
        minimum=minimum,
        method_reference=_text(p.method_reference, "payee.method_reference", max_len=256, required=False),
        hold_days=p.hold_days,
        schedule=_enum(p.schedule, _SCHEDULES, "payee.schedule"),
    )


# ---- encoding -------------------------------------------------------------------------------------


def _ts(value: str | datetime | None) -> Any:
    if value is None:
        return None
    return to_timestamp(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _m(amount: str | Decimal, currency: str) -> Any:
    return to_money(Decimal(amount), currency)


def payee_pb(v: dict[str, Any]) -> pb.Payee:
    return pb.Payee(
        payee_id=v["payee_id"],
        currency_code=v["currency_code"],
        kind=_KINDS[v["kind"]],
        minimum_amount=_m(v["minimum_amount"], v["currency_code"]),
        method_reference=v["method_reference"],
        hold_days=v["hold_days"],
        schedule=pb.PAYOUT_SCHEDULE_MONTHLY,
        create_time=_ts(v["create_time"]),
        update_time=_ts(v["update_time"]),
    )


def payout_pb(v: dict[str, Any]) -> pb.Payout:
    cur = v["currency_code"]
    return pb.Payout(
        id=v["id"],
        payee_id=v["payee_id"],
        period=v["period"],
        amount=_m(v["amount"], cur),
        available_consumed=_m(v["available_consumed"], cur),
        clawback_offset=_m(v["clawback_offset"], cur),
        method_reference=v["method_reference"],
        state=_STATE_PB[v["state"]],
        external_reference=v["external_reference"],
        failure_reason=v["failure_reason"],
        create_time=_ts(v["create_time"]),
        settle_time=_ts(v["settle_time"]),
    )


def transfer_pb(r: dict[str, Any]) -> pb.Transfer:
    cur = r["currency_code"]
    return pb.Transfer(
        id=r["id"],
        debit_account=pb.Account(
            owner=r["d_owner"], currency_code=cur, purpose=_PURPOSE_PB[Purpose(r["d_purpose"])]
        ),
        credit_account=pb.Account(
            owner=r["c_owner"], currency_code=cur, purpose=_PURPOSE_PB[Purpose(r["c_purpose"])]
        ),
        amount=_m(r["amount"], cur),
        reason=_REASON_PB[Reason(r["reason"])],
        source_kind=r["source_kind"],
        source_id=r["source_id"],
        corrects_transfer_id=r["corrects"] or "",
        effective_time=_ts(r["effective_time"]),
        post_time=_ts(r["post_time"]),
        available_time=_ts(r["available_time"]),
    )


def statement_pb(s: Statement) -> pb.Statement:
    cur = s.currency
    return pb.Statement(
        payee_id=s.payee_id,
        currency_code=cur,
        period=s.period,
        summary=pb.StatementSummary(
            revenue=_m(s.summary.revenue, cur),
            provider_cost=_m(s.summary.provider_cost, cur),
            platform_fee=_m(s.summary.platform_fee, cur),
            earnings=_m(s.summary.earnings, cur),
        ),
        ledger=pb.StatementLedger(
            opening_balance=_m(s.ledger.opening_balance, cur),
            earnings=_m(s.ledger.earnings, cur),
            clawbacks=_m(s.ledger.clawbacks, cur),
            payouts=_m(s.ledger.payouts, cur),
            closing_balance=_m(s.ledger.closing_balance, cur),
        ),
        lines=[
            pb.StatementLine(dimension=ln.dimension, key=ln.key, earnings=_m(ln.earnings, cur))
            for ln in s.lines
        ],
    )


def _ledger_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(handler)
    async def wrapped(self: Any, request: Any, context: Any) -> Any:
        try:
            return await handler(self, request, context)
        except LedgerError as exc:
            raise FailedPrecondition(f"the ledger refused the posting: {exc}") from None

    return wrapped


class PayoutsServicer(payouts_pb2_grpc.PayoutsServiceServicer):
    def __init__(self, service: PayoutsService) -> None:
        self.service = service

    async def CreatePayee(self, request: pb.CreatePayeeRequest, context: grpc.aio.ServicerContext) -> Any:
        rid = _request_id(request.request_id)
        view = await self.service.create_payee(rid, _payee_input(request.payee))
        return pb.CreatePayeeResponse(payee=payee_pb(view))

    async def UpdatePayee(self, request: pb.UpdatePayeeRequest, context: grpc.aio.ServicerContext) -> Any:
        rid = _request_id(request.request_id)
        view = await self.service.update_payee(rid, _payee_input(request.payee))
        return pb.UpdatePayeeResponse(payee=payee_pb(view))

    async def GetPayee(self, request: pb.GetPayeeRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.get_payee(_payee_id(request.payee_id), _currency(request.currency_code))
        return pb.GetPayeeResponse(payee=payee_pb(view))

    async def ListPayees(self, request: pb.ListPayeesRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_payees(request.page_size, _token(request.page_token))
        return pb.ListPayeesResponse(payees=[payee_pb(r) for r in rows], next_page_token=token)

    async def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext) -> Any:
        owner = _payee_id(request.payee_id, allow_platform=True)
        cur = _currency(request.currency_code)
        balances = await self.service.get_balance(owner, cur)
        zero = Decimal(0)
        payable = balances.get(Purpose.AVAILABLE, zero) + balances.get(Purpose.CLAWBACK, zero)
        owed = payable + balances.get(Purpose.PENDING, zero)
        return pb.GetBalanceResponse(
            accounts=[
                pb.AccountBalance(
                    account=pb.Account(owner=owner, currency_code=cur, purpose=_PURPOSE_PB[p]),
                    balance=_m(v, cur),
                )
                for p, v in balances.items()
            ],
            payable=_m(payable, cur),
            owed=_m(owed, cur),
        )

    async def ListTransfers(self, request: pb.ListTransfersRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_transfers(
            owner=_optional_payee(request.payee_id, allow_platform=True),
            currency=_currency(request.currency_code, required=False) or None,
            purpose=_enum(request.purpose, _PURPOSES, "purpose"),
            period=_period(request.period, required=False),
            source_id=_text(request.source_id, "source_id", max_len=160, required=False) or None,
            size=request.page_size,
            token=_token(request.page_token),
        )
        return pb.ListTransfersResponse(transfers=[transfer_pb(r) for r in rows], next_page_token=token)

    @_ledger_errors
    async def SyncEarnings(self, request: pb.SyncEarningsRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.sync_earnings(_request_id(request.request_id))
        return pb.SyncEarningsResponse(
            applied_count=view["applied_count"], last_sequence=view["last_sequence"]
        )

    @_ledger_errors
    async def ReleaseHolds(self, request: pb.ReleaseHoldsRequest, context: grpc.aio.ServicerContext) -> Any:
        view = await self.service.release_holds(_request_id(request.request_id))
        return pb.ReleaseHoldsResponse(released_count=view["released_count"])

    @_ledger_errors
    async def RunPayouts(self, request: pb.RunPayoutsRequest, context: grpc.aio.ServicerContext) -> Any:
        rid = _request_id(request.request_id)
        view = await self.service.run_payouts(rid, _period(request.period))
        return pb.RunPayoutsResponse(
            period=view["period"],
            created_count=view["created_count"],
            payout_count=view["payout_count"],
            totals=[_m(t["amount"], t["currency_code"]) for t in view["totals"]],
        )

    async def ListPayouts(self, request: pb.ListPayoutsRequest, context: grpc.aio.ServicerContext) -> Any:
        rows, token = await self.service.list_payouts(
            payee_id=_optional_payee(request.payee_id),
            period=_period(request.period, required=False),
            state=_enum(request.state, _STATES, "state"),
            size=request.page_size,
            token=_token(request.page_token),
        )
        return pb.ListPayoutsResponse(payouts=[payout_pb(r) for r in rows], next_page_token=token)

    @_ledger_errors
    async def MarkPayoutPaid(
        self, request: pb.MarkPayoutPaidRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        rid = _request_id(request.request_id)
        payout_id = _text(request.payout_id, "payout_id", max_len=160)
        ref = _text(request.external_reference, "external_reference", max_len=128)
        view = await self.service.mark_payout_paid(rid, payout_id, ref)
        return pb.MarkPayoutPaidResponse(payout=payout_pb(view))

    @_ledger_errors
    async def MarkPayoutFailed(
        self, request: pb.MarkPayoutFailedRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        rid = _request_id(request.request_id)
        payout_id = _text(request.payout_id, "payout_id", max_len=160)
        reason = _text(request.reason, "reason", max_len=500)
        view = await self.service.mark_payout_failed(rid, payout_id, reason)
        return pb.MarkPayoutFailedResponse(payout=payout_pb(view))

    async def ExportPayoutRun(
        self, request: pb.ExportPayoutRunRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        csv, count = await self.service.export_payout_run(_period(request.period))
        return pb.ExportPayoutRunResponse(csv=csv, payout_count=count)

    async def _statement(self, request: Any) -> Statement:
        return await self.service.statement(
            _payee_id(request.payee_id), _currency(request.currency_code), _period(request.period)
        )

    async def GetStatement(self, request: pb.GetStatementRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetStatementResponse(statement=statement_pb(await self._statement(request)))

    async def ExportStatement(
        self, request: pb.ExportStatementRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        return pb.ExportStatementResponse(csv=statement_csv(await self._statement(request)))

    async def Reconcile(self, request: pb.ReconcileRequest, context: grpc.aio.ServicerContext) -> Any:
        period = _period(request.period)
        checks = await self.service.reconcile(period)
        return pb.ReconcileResponse(
            period=str(period),
            clean=all(c.ok for c in checks),
            checks=[pb.ReconcileCheck(**c.view()) for c in checks],
        )


def register(service: PayoutsService) -> Any:
    def _register(server: grpc.aio.Server) -> list[str]:
        payouts_pb2_grpc.add_PayoutsServiceServicer_to_server(PayoutsServicer(service), server)
        return [pb.DESCRIPTOR.services_by_name["PayoutsService"].full_name]

    return _register


__all__ = ["ACCESS", "PayoutsServicer", "register"]
