"""`tollgate payouts ...` and `tollgate reconcile PERIOD`: the payouts service's API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tollgate.payouts.v1 import payouts_pb2 as ppb
from tollgatecli.base import (
    JsonOpt,
    RequestIdOpt,
    enum_name,
    handled,
    month_range,
    request_id,
    session,
)
from tollgatecli.client import CliError, Exit
from tollgatecli.output import money, to_data

payouts = typer.Typer(help="Payout runs, statements and the bank file (CSV).", no_args_is_help=True)

PeriodOpt = Annotated[str, typer.Option("--period", help="The month, YYYY-MM (UTC).")]

_STATES = {
    "any": ppb.PAYOUT_STATE_UNSPECIFIED,
    "pending": ppb.PAYOUT_STATE_PENDING,
    "paid": ppb.PAYOUT_STATE_PAID,
    "failed": ppb.PAYOUT_STATE_FAILED,
}


def _period(period: str) -> str:
    month_range(period)  # a usage error when it is not YYYY-MM
    return period


def _payout_row(p: ppb.Payout) -> list[Any]:
    return [
        p.id,
        p.payee_id,
        p.period,
        money(p.amount),
        money(p.clawback_offset),
        enum_name(ppb.PayoutState.Name(p.state), "PAYOUT_STATE_"),
        p.method_reference,
        p.external_reference or p.failure_reason,
    ]


PAYOUT_COLUMNS = ["id", "payee", "period", "amount", "clawback offset", "state", "method", "reference"]


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}", Exit.USAGE) from None


@payouts.command("run")
@handled
def payouts_run(
    ctx: typer.Context,
    period: PeriodOpt,
    sync: Annotated[
        bool,
        typer.Option("--sync/--no-sync", help="First read billing's earnings feed and release ended holds."),
    ] = True,
    rid: RequestIdOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Pay every payee whose available balance clears its minimum for the month (idempotent)."""
    client, out = session(ctx, as_json)
    period = _period(period)
    synced = released = None
    if sync:
        synced = client.call("payouts", "SyncEarnings", ppb.SyncEarningsRequest(request_id=request_id()))
        released = client.call("payouts", "ReleaseHolds", ppb.ReleaseHoldsRequest(request_id=request_id()))
    reply = client.call(
        "payouts", "RunPayouts", ppb.RunPayoutsRequest(request_id=request_id(rid), period=period)
    )
    if out.as_json:
        out.json(
            {
                **to_data(reply),
                "earnings_applied": synced.applied_count if synced else None,
                "holds_released": released.released_count if released else None,
            }
        )
        return
    if synced is not None and released is not None:
        out.note(
            f"earnings feed: {synced.applied_count} new entries applied; "
            f"{released.released_count} holds released"
        )
    out.table(
        f"Payout run {reply.period}",
        ["payouts", "created now", "totals"],
        [[reply.payout_count, reply.created_count, ", ".join(money(t) for t in reply.totals)]],
    )


@payouts.command("list")
@handled
def payouts_list(
    ctx: typer.Context,
    period: Annotated[str, typer.Option("--period", help="Only this month, YYYY-MM.")] = "",
    payee: Annotated[
        str, typer.Option("--payee", help="Only this payee (a builder id, provider:<name>).")
    ] = "",
    state: Annotated[str, typer.Option("--state", help="any, pending, paid or failed.")] = "any",
    as_json: JsonOpt = False,
) -> None:
    """Payouts by period, payee and currency."""
    client, out = session(ctx, as_json)
    if state not in _STATES:
        raise CliError(f"--state is one of {', '.join(_STATES)}, got {state!r}", Exit.USAGE)
    items = client.pages(
        "payouts",
        "ListPayouts",
        ppb.ListPayoutsRequest(
            payee_id=payee, period=_period(period) if period else "", state=_STATES[state], page_size=1000
        ),
        "payouts",
    )
    if out.as_json:
        out.json({"payouts": [to_data(p) for p in items]})
        return
    out.table("Payouts", PAYOUT_COLUMNS, [_payout_row(p) for p in items])


@payouts.command("statement")
@handled
def payouts_statement(
    ctx: typer.Context,
    payee: Annotated[str, typer.Argument(help="The payee: a builder id, or provider:<name>.")],
    period: PeriodOpt,
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code.")] = "USD",
    csv: Annotated[
        str, typer.Option("--csv", help="Write the statement as CSV to this file ('-': stdout).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """A payee's month: how its earnings came about, its balance, and earnings by app, customer,
    workflow and meter."""
    client, out = session(ctx, as_json)
    period = _period(period)
    if csv:
        reply = client.call(
            "payouts",
            "ExportStatement",
            ppb.ExportStatementRequest(payee_id=payee, currency_code=currency, period=period),
        )
        _write(reply.csv, csv)
        if csv != "-":
            out.note(f"statement of {payee} for {period} written to {csv}")
        return
    st = client.call(
        "payouts",
        "GetStatement",
        ppb.GetStatementRequest(payee_id=payee, currency_code=currency, period=period),
    ).statement
    if out.as_json:
        out.json({"statement": to_data(st)})
        return
    s, ledger = st.summary, st.ledger
    out.table(
        f"Statement of {st.payee_id} for {st.period} ({st.currency_code})",
        ["", "amount"],
        [
            ["revenue", money(s.revenue)],
            ["provider cost", money(s.provider_cost)],
            ["platform fee", money(s.platform_fee)],
            ["earnings", money(s.earnings)],
            ["opening balance", money(ledger.opening_balance)],
            ["+ earnings", money(ledger.earnings)],
            ["- clawbacks", money(ledger.clawbacks)],
            ["- payouts", money(ledger.payouts)],
            ["closing balance", money(ledger.closing_balance)],
        ],
    )
    out.table(
        "Earnings by dimension",
        ["dimension", "key", "earnings"],
        [[line.dimension, line.key or "(none)", money(line.earnings)] for line in st.lines],
    )


@payouts.command("export")
@handled
def payouts_export(
    ctx: typer.Context,
    period: PeriodOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="The CSV file to write ('-': stdout).")],
) -> None:
    """Write the month's payouts as the CSV handed to the bank (the same bytes on every call)."""
    client, out = session(ctx, False)
    reply = client.call("payouts", "ExportPayoutRun", ppb.ExportPayoutRunRequest(period=_period(period)))
    _write(reply.csv, output)
    if output != "-":
        out.note(f"{reply.payout_count} payouts of {period} written to {output}")


def reconcile(
    ctx: typer.Context,
    period: Annotated[str, typer.Argument(help="The month, YYYY-MM.")],
    as_json: JsonOpt = False,
) -> None:
    """Check that the gate, the bill and the payout agree for a month: ledger balances, payouts against
    available balances, earnings against paid invoices, usage against metering. Exits 6 when not clean."""
    client, out = session(ctx, as_json)
    reply = client.call("payouts", "Reconcile", ppb.ReconcileRequest(period=_period(period)))
    if out.as_json:
        out.json(to_data(reply))
    else:
        out.table(
            f"Reconcile {reply.period}",
            ["check", "scope", "expected", "actual", "difference", "ok"],
            [
                [c.name, c.scope, c.expected, c.actual, c.difference, "yes" if c.ok else "NO"]
                for c in reply.checks
            ],
        )
        out.note(
            "clean: every check agrees to the minor unit"
            if reply.clean
            else "NOT clean: see the checks marked NO"
        )
    if not reply.clean:
        raise CliError(f"reconcile {reply.period} is not clean", Exit.DIFFERENCES)
