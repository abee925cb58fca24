"""Every RPC of every service, fed requests drawn from its own descriptor, with a valid credential.

The contract at every edge: however strange the input, the answer is a deliberate status (OK,
INVALID_ARGUMENT naming the field, NOT_FOUND, ...) and never INTERNAL or UNKNOWN, no call runs into a
generous deadline, every service is still SERVING afterwards, and nothing is left half-written (the
invariants at the end of this module, checked through the public APIs).

`make test` runs TOLLGATE_FUZZ_EXAMPLES (default 25) derandomized examples per RPC; `make fuzz` runs
more, with random seeds, and prints the status codes per RPC (also written to .tollgate/fuzz-report.txt).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common.money import from_money
from tests.conftest import auth_metadata
from tests.fuzz.harness import (
    KNOWN_HITS,
    PENDING_RPCS,
    STARTABLE_CONTEXTS,
    Rpc,
    access_tables,
    discover_rpcs,
    discover_services,
    health_status,
    invoke,
    record,
)
from tests.fuzz.strategies import fresh_request_ids, messages, wire_bytes
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.gateway.v1 import admin_pb2
from tollgate.metering.v1 import metering_pb2 as mpb

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

EXAMPLES = int(os.environ.get("TOLLGATE_FUZZ_EXAMPLES", "25"))
RANDOM = bool(os.environ.get("TOLLGATE_FUZZ_RANDOM"))

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    database=None if not RANDOM else settings.default.database,
    deadline=None,  # database-backed: a slow example is not a failure, a wrong status is
    # Shrinking replays calls against shared state; in `make test` a failure prints the unshrunk
    # input at once, `make fuzz` shrinks it to the smallest for the report.
    phases=(Phase.explicit, Phase.generate, Phase.shrink) if RANDOM else (Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=RANDOM,
)

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}


def _strings(msg) -> list[str]:
    """Every string value in a message, at any depth (map keys and values included)."""
    out: list[str] = []
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_STRING:
            out.extend(value if fd.is_repeated else [value])
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    out.extend(x for x in (k, v) if isinstance(x, str))
                    if not isinstance(v, str) and hasattr(v, "ListFields"):
                        out.extend(_strings(v))
            else:
                for sub in value if fd.is_repeated else [value]:
                    out.extend(_strings(sub))
    return out


@dataclasses.dataclass(frozen=True)
class KnownBug:
    """A bug this harness found in a service another engineer owns, recognised by its input.

    A forbidden status on a matching input is counted (and listed by `test_known_bug_is_fixed`, which
    is xfail with this reason) instead of stopping the fuzzer, so it keeps looking for other bugs on
    the same RPC. Anything else forbidden fails at once.
    """

    name: str
    reason: str
    rpcs: frozenset[str]
    matches: object  # (request) -> bool

    def applies(self, rpc: Rpc, request) -> bool:
        return (rpc.id in self.rpcs or rpc.service.name in self.rpcs) and self.matches(request)


# Empty: every bug this harness found so far was fixed on main (billing's page tokens from another list,
# NUL characters reaching PostgreSQL in billing and gateway admin). Add an entry when a new one is found
# in a service another engineer owns; remove it when test_known_bug_is_fixed passes.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


ACCESS = access_tables(discover_services())
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def valid_callers(rpc: Rpc) -> list[str]:
    """Who may call `rpc` by its access rule: "operator", "builder:b1", "service:<name>", or "api-key"."""
    rule = ACCESS.get(rpc.service.full_name, {}).get(rpc.method.name)
    if rule is not None and rule.api_key:
        return ["api-key"]
    callers = ["operator"]
    if rule is not None and rule.builders:
        callers.append("builder:b1")
    if rule is not None:
        callers.extend(f"service:{s}" for s in sorted(rule.services))
    return callers


def caller_metadata(caller: str):
    if caller == "api-key":
        return None  # the target's own metadata: the gateway API key
    kind, _, name = caller.partition(":")
    return auth_metadata(kind, name or "tests")


def _params() -> list:
    params = []
    for rpc in discover_rpcs():
        marks = []
        if rpc.context not in STARTABLE_CONTEXTS:
            marks.append(
                pytest.mark.skip(reason=f"{rpc.context} has no fixture yet; its RPCs join when it does")
            )
        if rpc.id in PENDING_RPCS:
            marks.append(pytest.mark.skip(reason=f"{rpc.id} is published but not implemented yet"))
        params.append(pytest.param(rpc, id=rpc.id, marks=marks))
    return params


def test_every_service_in_the_contracts_is_fuzzed() -> None:
    names = {r.service.full_name for r in discover_rpcs()}
    expected = {
        "tollgate.metering.v1.MeteringService",
        "tollgate.billing.v1.BillingService",
        "tollgate.gateway.v1.InferenceService",
        "tollgate.gateway.v1.GatewayAdminService",
    }
    assert expected <= names, names
    # Each found RPC has a parameter of its own below: 38 before payouts.
    assert len(discover_rpcs()) >= 38


@pytest.mark.parametrize("rpc", _params())
@FUZZ_SETTINGS
@given(data=st.data())
async def test_rpc_answers_any_request_with_a_deliberate_status(suite, rpc: Rpc, data) -> None:
    target = suite.targets[rpc.service.full_name]
    # Any caller the RPC's access rule admits: the builder's credential also drives the interceptor's
    # scoping (empty builder fields filled in, another builder refused) with the fuzzed request.
    caller = data.draw(st.sampled_from(valid_callers(rpc)), label="caller")
    # Wild, almost valid, or plausible throughout: each example picks how far from valid it strays.
    plausibility = data.draw(st.sampled_from([0.5, 0.9, 1.0, 1.0]), label="plausibility")
    hints = dataclasses.replace(suite.hints, plausible_probability=plausibility)
    request = data.draw(messages(rpc.method.input_type, hints), label="request")
    fresh_request_ids(request)
    outcome = await invoke(target, rpc, request, caller_metadata(caller))
    record(rpc, outcome.code, outcome.details)
    _remember(suite, rpc, request, outcome, "b1" if caller == "builder:b1" else "")
    if caller in ("operator", "api-key"):  # admitted everywhere: no input makes it a refusal of the caller
        assert outcome.code not in DENIED, f"{rpc.id} refused the {caller}: {outcome.details[:300]}"
    if outcome.code in FORBIDDEN:
        known = next((b for b in KNOWN_BUGS if b.applies(rpc, request)), None)
        assert known, f"{rpc.id} answered {outcome.code.name}: {outcome.details[:500]}"
        KNOWN_HITS[known.name].append(f"{rpc.id} {outcome.code.name} <- {_short(request)}")
    for ctx, channel in suite.channels.items():
        assert await health_status(channel) == "SERVING", f"{ctx} is not SERVING after {rpc.id}"


@pytest.mark.parametrize("rpc", _params())
@settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 5, 3))
@given(data=st.data())
async def test_rpc_answers_any_body_bytes_with_a_deliberate_status(suite, rpc: Rpc, data) -> None:
    """Bodies that are not the RPC's message (random bytes, cut short, a flipped byte, a string field that
    is not UTF-8) are refused as input: never INTERNAL or UNKNOWN, and every service stays SERVING."""
    target = suite.targets[rpc.service.full_name]
    caller = data.draw(st.sampled_from(valid_callers(rpc)), label="caller")
    body = data.draw(wire_bytes(rpc.method.input_type, suite.hints), label="body")
    outcome = await invoke(target, rpc, body, caller_metadata(caller))
    record(rpc, outcome.code, outcome.details, suffix=" (bytes)")
    assert outcome.code not in FORBIDDEN, f"{rpc.id} answered {outcome.code.name}: {outcome.details[:500]}"
    if caller in ("operator", "api-key"):
        assert outcome.code not in DENIED, f"{rpc.id} refused the {caller}: {outcome.details[:300]}"
    for ctx, channel in suite.channels.items():
        assert await health_status(channel) == "SERVING", f"{ctx} is not SERVING after {rpc.id}"


def _short(msg, limit: int = 300) -> str:
    text = " ".join(str(msg).split())  # protobuf text format, escapes NUL and non-ASCII
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _remember(suite, rpc: Rpc, request, outcome, acting_builder: str) -> None:
    """What the invariant checks at the end need to know about accepted writes. A builder caller's
    empty builder fields were filled in with its builder by the server."""
    if outcome.code != grpc.StatusCode.OK:
        return
    if rpc.id == "MeteringService.IngestEvents":
        for ev, res in zip(request.events, outcome.response.results, strict=True):
            if res.outcome == mpb.INGEST_OUTCOME_ACCEPTED:
                key = (ev.builder_id or acting_builder, ev.id)
                suite.accepted_events[key] = suite.accepted_events.get(key, 0) + 1
    elif rpc.id == "GatewayAdminService.CreateApiKey":
        suite.created_keys[outcome.response.api_key.id] = outcome.response.api_key.builder_id
    if "builder_id" in request.DESCRIPTOR.fields_by_name:
        builder = request.builder_id or acting_builder
    else:
        builder = ""
    if builder:
        suite.builders_touched.add(builder)


@pytest.mark.parametrize(
    "bug",
    [pytest.param(b, id=b.name, marks=pytest.mark.xfail(reason=b.reason, strict=False)) for b in KNOWN_BUGS],
)
def test_known_bug_is_fixed(bug: KnownBug) -> None:
    hits = KNOWN_HITS[bug.name]
    assert not hits, f"{len(hits)} calls hit {bug.name}, e.g.:\n" + "\n".join(hits[:10])


# ---------------------------------------------------------------------------- nothing half-written


async def _all_pages(call, request, items: str) -> list:
    out, token = [], ""
    for _ in range(1000):
        request.page_token = token
        reply = await call(request, metadata=auth_metadata(), timeout=30)
        out.extend(getattr(reply, items))
        token = reply.next_page_token
        if not token or not getattr(reply, items):
            return out
    raise AssertionError("paging did not end")


async def test_every_accepted_event_is_stored_exactly_once(suite) -> None:
    accepted = suite.accepted_events
    twice = {k: n for k, n in accepted.items() if n > 1}
    assert not twice, f"event ids accepted more than once: {list(twice)[:5]}"
    from tollgate.metering.v1 import metering_pb2_grpc

    stub = metering_pb2_grpc.MeteringServiceStub(suite.channels["metering"])
    builders = sorted({b for b, _ in accepted})[:50]
    for builder in builders:
        events = await _all_pages(
            stub.ListEvents, mpb.ListEventsRequest(builder_id=builder, page_size=1000), "events"
        )
        stored = Counter(e.id for e in events)
        for b, event_id in accepted:
            if b == builder:
                assert stored[event_id] == 1, (
                    f"accepted event {event_id!r} of {builder!r} stored {stored[event_id]}x"
                )


async def test_finalized_invoices_add_up_after_fuzzing(suite) -> None:
    from tollgate.billing.v1 import billing_pb2_grpc

    stub = billing_pb2_grpc.BillingServiceStub(suite.channels["billing"])
    builders = sorted({"b1", "b2", *suite.builders_touched})[:50]
    listed_for_b1 = 0
    for builder in builders:
        try:
            invoices = await _all_pages(
                stub.ListInvoices, bpb.ListInvoicesRequest(builder_id=builder, page_size=100), "invoices"
            )
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            continue
        listed_for_b1 += len(invoices) if builder == "b1" else 0
        for listed in invoices:
            if listed.status != bpb.INVOICE_STATUS_FINALIZED:
                continue
            got = await stub.GetInvoice(
                bpb.GetInvoiceRequest(builder_id=builder, invoice_id=listed.id), metadata=auth_metadata()
            )
            inv = got.invoice
            lines = [from_money(line.amount) for line in inv.lines]
            assert from_money(inv.total) == sum(lines, Decimal(0)), inv.id
            for line in inv.lines:
                s = line.split
                parts = (
                    from_money(s.provider_cost) + from_money(s.platform_fee) + from_money(s.builder_margin)
                )
                assert parts == from_money(line.amount), (inv.id, line.position)
            owed = from_money(inv.total) - from_money(inv.wallet_applied) - from_money(inv.credited)
            owed -= from_money(inv.amount_paid)
            assert from_money(inv.amount_due) == max(owed, Decimal(0)), inv.id
    assert listed_for_b1 >= 2  # the two seeded invoices at least (finalized, or voided by the fuzzer)


async def test_wallets_never_go_negative_after_fuzzing(suite) -> None:
    from tollgate.billing.v1 import billing_pb2_grpc

    stub = billing_pb2_grpc.BillingServiceStub(suite.channels["billing"])
    for cid in ("c1", "c2", "c3"):
        got = await stub.GetWallet(
            bpb.GetWalletRequest(builder_id="b1", customer_id=cid), metadata=auth_metadata()
        )
        wallet = got.wallet
        assert from_money(wallet.balance) >= 0, (cid, wallet)
        if len(wallet.transactions) < 50:  # the whole history is listed: the balance is its sum
            assert from_money(wallet.balance) == sum(
                (from_money(t.amount) for t in wallet.transactions), Decimal(0)
            ), (cid, wallet)


async def test_spend_counters_match_their_leases_after_fuzzing(suite) -> None:
    """Every spend period's held is what its active leases hold, and its spent what its leases consumed
    (billing.domain.spend rule 4), whatever the fuzzer granted, reported, released or deleted."""
    from sqlalchemy import text

    from common.db import create_engine

    engine = create_engine(suite.database_urls["billing"], pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT p.control_id, p.spent, p.held,"
                        " coalesce(sum(l.consumed), 0),"
                        " coalesce(sum(greatest(l.granted - l.consumed, 0))"
                        "   FILTER (WHERE l.state = 'active'), 0)"
                        " FROM spend_periods p LEFT JOIN spend_leases l"
                        " ON l.control_id = p.control_id AND l.period_start = p.period_start"
                        " GROUP BY p.control_id, p.period_start, p.spent, p.held"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert rows, "c1's seeded control (kept from DeleteSpendControl) has its period"
    for control_id, spent, held, consumed, holding in rows:
        assert (spent, held) == (consumed, holding), control_id


async def test_every_created_api_key_is_listed_once(suite) -> None:
    target = suite.targets["tollgate.gateway.v1.GatewayAdminService"]
    from tollgate.gateway.v1 import admin_pb2_grpc

    stub = admin_pb2_grpc.GatewayAdminServiceStub(target.channel)
    for builder in sorted(set(suite.created_keys.values()))[:50]:
        keys = await _all_pages(
            stub.ListApiKeys,
            admin_pb2.ListApiKeysRequest(builder_id=builder, include_revoked=True, page_size=100),
            "api_keys",
        )
        listed = Counter(k.id for k in keys)
        for key_id, b in suite.created_keys.items():
            if b == builder:
                assert listed[key_id] == 1, f"created key {key_id} of {builder!r} listed {listed[key_id]}x"


@pytest.mark.skipif("payouts" not in STARTABLE_CONTEXTS, reason="services/payouts is not in the tree yet")
async def test_payouts_ledger_reconciles_after_fuzzing(suite) -> None:
    """After the fuzzed payments, credits, voids, syncs, runs and settlements: payouts' own Reconcile finds
    the ledger balanced, balances equal to their transfers, payouts equal to what they consumed, and (once
    the feed is caught up) earnings equal to billing's paid splits."""
    rpcs = {r.method.name: r for r in discover_rpcs() if r.context == "payouts"}
    target = suite.targets[rpcs["Reconcile"].service.full_name]
    synced = await invoke(
        target, rpcs["SyncEarnings"], rpcs["SyncEarnings"].request_class()(request_id="sync")
    )
    assert synced.code == grpc.StatusCode.OK, synced.details
    month = suite.hints.now.strftime("%Y-%m")
    for period in sorted({month, (suite.hints.now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")}):
        outcome = await invoke(target, rpcs["Reconcile"], rpcs["Reconcile"].request_class()(period=period))
        assert outcome.code == grpc.StatusCode.OK, outcome.details
        failed = [
            f"{c.name} {c.scope}: {c.expected} vs {c.actual}" for c in outcome.response.checks if not c.ok
        ]
        assert not failed, f"{period}: {failed[:10]}"
