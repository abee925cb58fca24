"""Pricing a builder can test, over real gRPC, PostgreSQL and metering, on the agency month of
test_month_close_api.py (Acme on the documents plan, Beta on the support plan, a 5% platform fee).

SimulatePlan prices the month's real usage under a draft plan beside what was billed; given the plan
that was billed it reproduces each invoice to the cent. PriceUsageProfiles prices described months;
every expected amount is worked out by hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from billing_kit import dec, field_of, ts
from test_month_close_api import BUILDER, DOCS_YAML, M1, M2, World
from test_month_close_api import world as agency_world

from tests.conftest import auth_channel, token
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import billing_pb2_grpc as bpb_grpc

# The agency month, built and closed once for this module's own databases.
world = agency_world


def _totals(t: bpb.PricedTotals) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return dec(t.total), dec(t.provider_cost), dec(t.platform_fee), dec(t.builder_margin)


def _lines(inv: bpb.Invoice) -> list[tuple]:
    return [
        (
            ln.kind,
            ln.charge_key,
            ln.quantity,
            ln.included_quantity,
            [(t.label, t.quantity, t.amount) for t in ln.tiers],
            dec(ln.amount),
            _totals(bpb.PricedTotals(total=ln.amount, **{f: getattr(ln.split, f) for f in _PARTS})),
            [(u.tag, u.value, u.quantity) for u in ln.usage_by_tag],
        )
        for ln in inv.lines
    ]


_PARTS = ("provider_cost", "platform_fee", "builder_margin")


async def _support_version(b, world: World) -> bpb.PlanVersion:
    plan = await b.GetPlan(bpb.GetPlanRequest(builder_id=BUILDER, plan_id=world.plan_support))
    return plan.plan.versions[-1]


async def test_simulating_the_billed_plans_reproduces_each_invoice_to_the_cent(stack, world: World) -> None:
    b = stack.billing
    docs = await b.SimulatePlan(
        bpb.SimulatePlanRequest(
            builder_id=BUILDER,
            customer_id="acme",
            period_start_time=ts(M1),
            plan=bpb.DraftPlan(yaml=DOCS_YAML),
        )
    )
    support = await b.SimulatePlan(
        bpb.SimulatePlanRequest(
            builder_id=BUILDER,
            customer_id="beta",
            period_start_time=ts(M1),
            plan=bpb.DraftPlan(version=await _support_version(b, world)),
        )
    )
    for reply, cid in ((docs, "acme"), (support, "beta")):
        [sim] = reply.customers
        billed = world.invoices[cid]
        assert sim.customer_id == cid and sim.billed_invoice_id == billed.id
        assert _lines(sim.projected_invoice) == _lines(billed)
        assert sim.projected_invoice.usage_cutoff_time == billed.usage_cutoff_time
        assert sim.projected == sim.billed
    # Acme: 54.00 documents + 15.43 tokens = 69.43; cost 12.35; fee 2.70 + 0.77; margin 51.30 + 2.31.
    assert _totals(docs.projected) == (Decimal("69.43"), Decimal("12.35"), Decimal("3.47"), Decimal("53.61"))
    # Beta: 49.00 + 29.60 + 2.51 = 81.11; cost 2.00; fee 2.45 + 1.48 + 0.13; margin 46.55 + 28.12 + 0.38.
    assert _totals(support.billed) == (Decimal("81.11"), Decimal("2.00"), Decimal("4.06"), Decimal("75.05"))


async def test_a_cheaper_draft_for_every_customer_shows_revenue_and_margin_beside_the_bill(
    stack, world: World
) -> None:
    b = stack.billing
    before = await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))
    plans_before = await b.ListPlans(bpb.ListPlansRequest(builder_id=BUILDER))
    cheaper = DOCS_YAML.replace('{bucket: "51+", unit_price: "3.00"}', '{bucket: "51+", unit_price: "2.00"}')
    reply = await b.SimulatePlan(
        bpb.SimulatePlanRequest(
            builder_id=BUILDER, period_start_time=ts(M1), plan=bpb.DraftPlan(label="cheaper", yaml=cheaper)
        )
    )
    by_id = {c.customer_id: c for c in reply.customers}
    assert sorted(by_id) == ["acme", "beta"]
    # Acme: 20 x 1.20 + 10 x 2.00 = 44.00 (fee 2.20, margin 41.80) + tokens 15.43 = 59.43.
    assert _totals(by_id["acme"].projected) == (
        Decimal("59.43"),
        Decimal("12.35"),
        Decimal("2.97"),
        Decimal("44.11"),
    )
    # Beta under the documents plan: no documents, tokens 2.004 x 1.25 = 2.505 -> 2.51; cost 2.00,
    # fee 0.13, margin 0.38. Beside its real 81.11.
    assert _totals(by_id["beta"].projected) == (
        Decimal("2.51"),
        Decimal("2.00"),
        Decimal("0.13"),
        Decimal("0.38"),
    )
    assert dec(by_id["beta"].billed.total) == Decimal("81.11")
    # Sums: projected 59.43 + 2.51 = 61.94; billed 69.43 + 81.11 = 150.54.
    assert dec(reply.projected.total) == Decimal("61.94")
    assert dec(reply.billed.total) == Decimal("150.54")
    assert dec(reply.projected.builder_margin) == Decimal("44.49")
    # Nothing was written.
    assert await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER)) == before
    assert await b.ListPlans(bpb.ListPlansRequest(builder_id=BUILDER)) == plans_before


async def test_simulation_of_a_month_not_ended_or_not_a_month_start_is_refused(stack, world: World) -> None:
    b = stack.billing
    cases = [
        (M1.replace(day=2), grpc.StatusCode.INVALID_ARGUMENT, "must be the first of a month"),
        (M2.replace(year=M2.year + 1), grpc.StatusCode.FAILED_PRECONDITION, "has not ended yet"),
    ]
    for start, code, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.SimulatePlan(
                bpb.SimulatePlanRequest(
                    builder_id=BUILDER, period_start_time=ts(start), plan=bpb.DraftPlan(yaml=DOCS_YAML)
                )
            )
        assert err.value.code() == code and words in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.SimulatePlan(
            bpb.SimulatePlanRequest(
                builder_id=BUILDER,
                period_start_time=ts(M1),
                plan=bpb.DraftPlan(yaml="currency: USD\ncharges: 3"),
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value).startswith("plan.yaml")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.SimulatePlan(bpb.SimulatePlanRequest(builder_id=BUILDER, period_start_time=ts(M1)))
    assert (err.value.code(), field_of(err.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "plan")


def _meters(*meters: bpb.MeterQuantity) -> bpb.MeterQuantities:
    return bpb.MeterQuantities(meters=list(meters))


async def test_light_heavy_and_scaled_months_priced_under_two_plans_by_hand(stack, world: World) -> None:
    b = stack.billing
    light = bpb.UsageProfile(
        name="light",
        meters=_meters(
            bpb.MeterQuantity(
                meter_key="documents",
                quantity="40",
                buckets=[bpb.BucketQuantity(bucket="1-10", quantity="40")],
            ),
            bpb.MeterQuantity(meter_key="llm_cost", quantity="8.00", event_count="20"),
        ),
    )
    heavy = bpb.UsageProfile(
        name="heavy",
        meters=_meters(
            bpb.MeterQuantity(
                meter_key="documents",
                quantity="300",
                buckets=[
                    bpb.BucketQuantity(bucket="1-10", quantity="200"),
                    bpb.BucketQuantity(bucket="11-50", quantity="80"),
                    bpb.BucketQuantity(bucket="51+", quantity="20"),
                ],
            ),
            bpb.MeterQuantity(meter_key="llm_cost", quantity="100", event_count="400"),
            bpb.MeterQuantity(meter_key="tickets", quantity="500", event_count="500"),
        ),
    )
    acme_twice = bpb.UsageProfile(
        name="acme-x2", scaled=bpb.ScaledMonth(customer_id="acme", period_start_time=ts(M1), factor="2")
    )
    reply = await b.PriceUsageProfiles(
        bpb.PriceUsageProfilesRequest(
            builder_id=BUILDER,
            plans=[
                bpb.DraftPlan(label="docs", yaml=DOCS_YAML),
                bpb.DraftPlan(label="support", version=await _support_version(b, world)),
            ],
            profiles=[light, heavy, acme_twice],
        )
    )
    got = {(p.profile, p.plan): _totals(p.totals) for p in reply.prices}
    assert [(p.profile, p.plan) for p in reply.prices] == [
        ("light", "docs"),
        ("light", "support"),
        ("heavy", "docs"),
        ("heavy", "support"),
        ("acme-x2", "docs"),
        ("acme-x2", "support"),
    ]
    D = Decimal
    # Light, documents plan: 40 documents inside the 100 included -> 0.00. Tokens 8.00 x 1.25 = 10.00:
    # cost 8.00, fee 5% = 0.50, margin 1.50.
    assert got[("light", "docs")] == (D("10.00"), D("8.00"), D("0.50"), D("1.50"))
    # Light, support plan: base 49.00 (fee 2.45, margin 46.55) + no tickets + tokens 10.00 = 59.00.
    assert got[("light", "support")] == (D("59.00"), D("8.00"), D("2.95"), D("48.05"))
    # Heavy, documents plan: the 100 included documents come out of the 200 small ones; billable
    # 100 x 0.50 + 80 x 1.20 + 20 x 3.00 = 50.00 + 96.00 + 60.00 = 206.00 (fee 10.30, margin 195.70).
    # Tokens 100 x 1.25 = 125.00: cost 100.00, fee 6.25, margin 18.75. Total 331.00.
    assert got[("heavy", "docs")] == (D("331.00"), D("100.00"), D("16.55"), D("214.45"))
    # Heavy, support plan: 49.00 + 500 x 0.80 = 400.00 (fee 20.00) + 125.00 = 574.00;
    # fee 2.45 + 20.00 + 6.25 = 28.70; margin 574.00 - 100.00 - 28.70 = 445.30.
    assert got[("heavy", "support")] == (D("574.00"), D("100.00"), D("28.70"), D("445.30"))
    # Acme's month twice over: 180 small, 60 mid, 20 large documents; the 100 included from the small:
    # 80 x 0.50 + 60 x 1.20 + 20 x 3.00 = 40.00 + 72.00 + 60.00 = 172.00 (fee 8.60, margin 163.40).
    # Tokens: cost 2 x 12.3456 = 24.6912; x 1.25 = 30.864 -> 30.86; cost 24.69; fee 1.543 -> 1.54;
    # margin 30.86 - 24.69 - 1.54 = 4.63. Total 202.86.
    assert got[("acme-x2", "docs")] == (D("202.86"), D("24.69"), D("10.14"), D("168.03"))
    # Under the support plan Acme has no tickets: 49.00 + 30.86 = 79.86; fee 2.45 + 1.54 = 3.99.
    assert got[("acme-x2", "support")] == (D("79.86"), D("24.69"), D("3.99"), D("51.18"))
    heavy_docs = reply.prices[2].projected_invoice
    docs_line = next(ln for ln in heavy_docs.lines if ln.charge_key == "documents")
    assert [(t.label, t.quantity) for t in docs_line.tiers] == [
        ("1-10", "100"),
        ("11-50", "80"),
        ("51+", "20"),
    ]


async def test_profiles_with_repeated_names_or_unknown_customers_are_refused(stack, world: World) -> None:
    b = stack.billing
    light = bpb.UsageProfile(
        name="light", meters=_meters(bpb.MeterQuantity(meter_key="tickets", quantity="1"))
    )
    cases = [
        (
            bpb.PriceUsageProfilesRequest(
                builder_id=BUILDER, plans=[bpb.DraftPlan(yaml=DOCS_YAML)], profiles=[light, light]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "profiles[1]",
        ),
        (
            bpb.PriceUsageProfilesRequest(
                builder_id=BUILDER,
                plans=[bpb.DraftPlan(yaml=DOCS_YAML)],
                profiles=[
                    bpb.UsageProfile(
                        name="x", scaled=bpb.ScaledMonth(customer_id="nobody", period_start_time=ts(M1))
                    )
                ],
            ),
            grpc.StatusCode.NOT_FOUND,
            None,  # NOT_FOUND names the customer in its message
        ),
        (
            bpb.PriceUsageProfilesRequest(
                builder_id=BUILDER,
                plans=[bpb.DraftPlan(yaml=DOCS_YAML)],
                profiles=[
                    bpb.UsageProfile(
                        name="neg", meters=_meters(bpb.MeterQuantity(meter_key="tickets", quantity="-1"))
                    )
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "profiles[0].meters.meters[0].quantity",
        ),
        (
            bpb.PriceUsageProfilesRequest(builder_id=BUILDER, plans=[], profiles=[light]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "plans",
        ),
    ]
    for request, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.PriceUsageProfiles(request)
        assert (err.value.code(), field_of(err.value)) == (code, field), err.value.details()
        if code == grpc.StatusCode.NOT_FOUND:
            assert "customer 'nobody' not found" in err.value.details()


async def test_a_builder_simulates_its_own_usage_and_no_other_builders(stack, world: World) -> None:
    request = bpb.SimulatePlanRequest(period_start_time=ts(M1), plan=bpb.DraftPlan(yaml=DOCS_YAML))
    async with auth_channel(stack.billing_address, credential=token("builder", BUILDER)) as ch:
        own = await bpb_grpc.BillingServiceStub(ch).SimulatePlan(request)
    # The builder comes from the credential: both of its customers, 69.43 + 2.51.
    assert dec(own.projected.total) == Decimal("71.94")
    async with auth_channel(stack.billing_address, credential=token("builder", "someone-else")) as ch:
        stub = bpb_grpc.BillingServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SimulatePlan(
                bpb.SimulatePlanRequest(
                    builder_id=BUILDER, period_start_time=ts(M1), plan=bpb.DraftPlan(yaml=DOCS_YAML)
                )
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PriceUsageProfiles(bpb.PriceUsageProfilesRequest(builder_id=BUILDER))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Its own (empty) books: no customers, nothing projected.
        empty = await stub.SimulatePlan(request)
        assert list(empty.customers) == [] and dec(empty.projected.total) == 0


def _row(r: bpb.UnitEconomics) -> tuple:
    return (
        r.units,
        *(dec(getattr(r, f)) for f in ("revenue", "provider_cost", "platform_fee", "builder_margin")),
        r.margin_per_unit,
    )


async def test_unit_economics_per_meter_and_workflow_match_the_invoices_to_the_cent(
    stack, world: World
) -> None:
    reply = await stack.billing.GetUnitEconomics(
        bpb.GetUnitEconomicsRequest(builder_id=BUILDER, period_start_time=ts(M1))
    )
    assert reply.invoice_count == 2
    meters = {r.meter_key: _row(r) for r in reply.meters}
    D = Decimal
    assert meters == {
        # Beta's base fee: one unit of 49.00, fee 2.45, margin 46.55.
        "": ("1", D("49.00"), D("0"), D("2.45"), D("46.55"), "46.55"),
        # Acme's 130 documents: 54.00, fee 2.70, margin 51.30; 51.30 / 130 = 0.3946153846... -> 0.394615385.
        "documents": ("130", D("54.00"), D("0"), D("2.70"), D("51.30"), "0.394615385"),
        # Tokens: 12.3456 + 2.004 = 14.3496 of provider cost; 15.43 + 2.51 = 17.94; cost 12.35 + 2.00;
        # fee 0.77 + 0.13; margin 2.31 + 0.38 = 2.69; 2.69 / 14.3496 = 0.18746167... -> 0.187461671.
        "llm_cost": ("14.3496", D("17.94"), D("14.35"), D("0.90"), D("2.69"), "0.187461671"),
        # Beta's 37 tickets: 29.60, fee 1.48, margin 28.12 = 0.76 a ticket.
        "tickets": ("37", D("29.60"), D("0"), D("1.48"), D("28.12"), "0.76"),
    }
    flows = {(r.meter_key, r.workflow): _row(r) for r in reply.workflows}
    # Documents split 90 (invoices) : 40 (contracts), each part by largest remainder in cents:
    # fee 270 cents -> 186.92 / 83.08 -> 187 / 83; margin 5130 -> 3551.54 / 1578.46 -> 3552 / 1578.
    # Revenue is the sum of the parts: 1.87 + 35.52 = 37.39 and 0.83 + 15.78 = 16.61 (54.00 in all).
    assert flows[("documents", "invoices")] == (
        "90",
        D("37.39"),
        D("0"),
        D("1.87"),
        D("35.52"),
        "0.394666667",
    )
    assert flows[("documents", "contracts")] == ("40", D("16.61"), D("0"), D("0.83"), D("15.78"), "0.3945")
    # All of Acme's model usage was for contracts, all of Beta's for triage.
    assert flows[("llm_cost", "contracts")][:5] == ("12.3456", D("15.43"), D("12.35"), D("0.77"), D("2.31"))
    assert flows[("llm_cost", "triage")][:5] == ("2.004", D("2.51"), D("2.00"), D("0.13"), D("0.38"))
    assert flows[("tickets", "triage")] == meters["tickets"]
    assert flows[("", "")] == meters[""]
    assert len(flows) == 6
    # Every meter's workflow rows sum exactly to the meter's row.
    for meter, row in meters.items():
        parts = [v for (m, _), v in flows.items() if m == meter]
        assert sum(p[1] for p in parts) == row[1] and sum(p[4] for p in parts) == row[4]
