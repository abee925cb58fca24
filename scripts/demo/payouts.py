"""Payouts demo: the builder the billing story billed is paid its margin, with a statement and a
reconcile that shows the gate, the bill and the payout agree.

Played after scripts/demo/billing.py against the same running suite (it reads the builder that story
billed from `scripts.demo.billing.builder_id`). Drives payouts through its public gRPC API as the
operator: catch up with billing's earnings feed, settle the payee, release ended holds, run this
month's payouts, export the bank file, then the builder's statement and the reconcile of last month
(the invoices' period) and of this month (the run's period). The earnings become available at once
only when the suite starts payouts with PAYOUTS_DEFAULT_HOLD_DAYS=0: entries keep the hold they were
posted with, and the background consumer may post them before this story changes the payee.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc

from common.money import from_money, to_money
from scripts.demo import billing as billing_story
from scripts.demo import operator_channel
from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgate.payouts.v1 import payouts_pb2_grpc

try:  # Rich draws the tables when it is installed; plain aligned text otherwise.
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - depends on the environment
    Console = Table = None  # type: ignore[assignment,misc]

PROVIDERS = "provider:all"
BANK_FILE_HEADER = ["payee_id", "method_reference", "amount", "currency_code", "payout_id"]


def _fmt(amount: Decimal) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _money(money: object) -> str:
    return _fmt(from_money(money))  # type: ignore[arg-type]


def table(title: str, headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> None:
    """Print rows under headers; the columns in `right` (amounts) are right-aligned."""
    if Table is not None:
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(h, justify="right" if i in right else "left")
        for row in rows:
            t.add_row(*row)
        Console(width=120).print(t)
        return
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(title)
    print("  " + line(headers))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + line(row))


async def _settle_payee(
    payouts: payouts_pb2_grpc.PayoutsServiceStub, payee_id: str, minimum: str, method: str
) -> ppb.Payee | None:
    """Pay the payee with no hold, from `minimum`, to `method`; None when the feed never showed it."""
    try:
        got = await payouts.GetPayee(ppb.GetPayeeRequest(payee_id=payee_id, currency_code="USD"), timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    payee = ppb.Payee()
    payee.CopyFrom(got.payee)
    payee.hold_days = 0
    payee.minimum_amount.CopyFrom(to_money(Decimal(minimum), "USD"))
    payee.method_reference = method
    updated = await payouts.UpdatePayee(
        ppb.UpdatePayeeRequest(request_id=uuid.uuid4().hex, payee=payee), timeout=10
    )
    return updated.payee


async def _bank_file(payouts: payouts_pb2_grpc.PayoutsServiceStub, period: str) -> list[list[str]]:
    """The period's payout run as ExportPayoutRun writes it, header checked and dropped."""
    export = await payouts.ExportPayoutRun(ppb.ExportPayoutRunRequest(period=period), timeout=30)
    header, *rows = csv.reader(io.StringIO(export.csv))
    if header != BANK_FILE_HEADER:
        raise RuntimeError(f"unexpected bank file header {header}")
    return rows


async def run(endpoints: dict[str, str]) -> None:
    builder = billing_story.builder_id
    if builder is None:
        print("No builder to pay: the billing story did not run.")
        return
    now = datetime.now(UTC)
    this_month = f"{now:%Y-%m}"
    last_month = f"{now.year - (now.month == 1)}-{(now.month - 2) % 12 + 1:02d}"
    async with operator_channel(endpoints["payouts"]) as pch:
        payouts = payouts_pb2_grpc.PayoutsServiceStub(pch)

        synced = await payouts.SyncEarnings(ppb.SyncEarningsRequest(request_id=uuid.uuid4().hex), timeout=30)
        print(
            f"Billing's earnings feed applied up to entry {synced.last_sequence} "
            f"({synced.applied_count} by this SyncEarnings, any others by the background consumer)."
        )
        settled = await _settle_payee(payouts, builder, "10.00", f"bank:{builder}")
        await _settle_payee(payouts, PROVIDERS, "1.00", "bank:provider-rewards-pool")
        if settled is not None:
            print(
                f"Payee {builder}: hold {settled.hold_days} days, minimum {_money(settled.minimum_amount)}, "
                f"paid to {settled.method_reference!r}."
            )
        released = await payouts.ReleaseHolds(
            ppb.ReleaseHoldsRequest(request_id=uuid.uuid4().hex), timeout=30
        )
        balance = await payouts.GetBalance(
            ppb.GetBalanceRequest(payee_id=builder, currency_code="USD"), timeout=10
        )
        print(
            f"Holds released: {released.released_count}. {builder} may be paid {_money(balance.payable)} "
            f"(owed {_money(balance.owed)})."
        )

        # The suite's database outlives a demo: earlier demos were paid this month too, so the table
        # shows the bank-file rows this run adds.
        before = {r[-1] for r in await _bank_file(payouts, this_month)}
        ran = await payouts.RunPayouts(
            ppb.RunPayoutsRequest(request_id=uuid.uuid4().hex, period=this_month), timeout=60
        )
        totals = ", ".join(_money(t) for t in ran.totals) or "$0.00"
        print(
            f"Payout run {this_month}: {ran.created_count} new, "
            f"{ran.payout_count} payouts this month in all ({totals})."
        )
        body = await _bank_file(payouts, this_month)
        added = [r for r in body if r[-1] not in before]
        table(
            f"Bank file {this_month}: rows added by this run ({len(added)} of {len(body)})",
            BANK_FILE_HEADER,
            [[*r[:2], _fmt(Decimal(r[2])), *r[3:]] for r in added],
            right={2},
        )
        for payee in (builder, PROVIDERS):
            if not any(r[0] == payee for r in added):
                left = await payouts.GetBalance(
                    ppb.GetBalanceRequest(payee_id=payee, currency_code="USD"), timeout=10
                )
                print(
                    f"  {payee}: no new payout this month (one payout per payee and month); "
                    f"{_money(left.payable)} carries over to next month's run."
                )

        got = await payouts.GetStatement(
            ppb.GetStatementRequest(payee_id=builder, currency_code="USD", period=this_month), timeout=30
        )
        st = got.statement
        s, led = st.summary, st.ledger
        table(
            f"Statement of {builder}, {st.period} ({st.currency_code})",
            ["", "amount"],
            [
                ["revenue (what the customers paid)", _money(s.revenue)],
                ["- provider cost", _money(s.provider_cost)],
                ["- platform fee", _money(s.platform_fee)],
                ["= earnings", _money(s.earnings)],
                ["opening balance", _money(led.opening_balance)],
                ["+ earnings", _money(led.earnings)],
                ["- clawbacks", _money(led.clawbacks)],
                ["- payouts", _money(led.payouts)],
                ["= closing balance", _money(led.closing_balance)],
            ],
            right={1},
        )
        table(
            f"Breakdown of the {st.period} earnings",
            ["dimension", "key", "earnings"],
            [[ln.dimension, ln.key or "(none)", _money(ln.earnings)]
             for ln in st.lines],
            right={2},
        )  # fmt: skip

        for period, what in ((last_month, "the invoices' month"), (this_month, "the payout run's month")):
            report = await payouts.Reconcile(ppb.ReconcileRequest(period=period), timeout=60)
            # Platform-wide checks and this builder's; earlier demos' builders are only counted.
            mine = [c for c in report.checks if "/" not in c.scope or c.scope.startswith(f"{builder}/")]
            others = [c for c in report.checks if c not in mine]
            table(
                f"Reconcile {report.period} ({what}): {'clean' if report.clean else 'DIFFERENCES'}",
                ["check", "scope", "expected", "actual", "difference"],
                [[c.name, c.scope, c.expected, c.actual, c.difference] for c in mine],
                right={2, 3, 4},
            )
            if others:
                bad = sum(not c.ok for c in others)
                print(f"  and {len(others)} checks of earlier demos' builders, {bad} with a difference.")
