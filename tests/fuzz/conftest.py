"""The whole suite on loopback for the fuzz and authorization tests: metering and billing from
tests/billing/conftest.py (`stack`), the gateway from tests/gateway/conftest.py (`make_stack`) wired to
that metering with its relay on, each with its own migrated PostgreSQL database, and seed data made
through the public APIs (meters, events, customers, plans, subscriptions, a closed month with two
finalized invoices, one paid, a wallet top-up, API keys) whose ids become the fuzzer's plausible values.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

_HERE = Path(__file__).resolve().parent
_BILLING_TESTS = str(_HERE.parent / "billing")
if _BILLING_TESTS not in sys.path:  # billing_kit, imported by name as tests/billing does
    sys.path.insert(0, _BILLING_TESTS)

from billing_kit import create_meters, event, ingest, rid, ts, usd  # noqa: E402

from tests.billing.conftest import fast_metering_address, stack  # noqa: E402, F401 (fixtures reused)
from tests.conftest import REPO, auth_channel, auth_metadata, security  # noqa: E402
from tests.fuzz.harness import (  # noqa: E402
    CHANNEL_OPTIONS,
    STARTABLE_CONTEXTS,
    Target,
    details_report,
    known_hits_report,
    report_table,
)
from tests.fuzz.strategies import FRESH, Hints  # noqa: E402
from tests.gateway.conftest import PROVIDER_NAMES, credential_env, make_stack  # noqa: E402, F401
from tollgate.billing.v1 import billing_pb2 as bpb  # noqa: E402
from tollgate.gateway.v1 import admin_pb2  # noqa: E402

BUILDER = "b1"
OTHER_BUILDER = "b2"
REPORT_PATH = REPO / ".tollgate" / "fuzz-report.txt"

PLAN_YAML = """
currency: USD
base_fee: "20.00"
charges:
  - key: tickets
    meter_key: tickets
    display_name: Tickets handled
    per_unit: {unit_price: "0.80"}
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25}
"""


@pytest.fixture(scope="module")
def make_database(make_database):
    """The session's factory, remembering each database's URL by context (for the row-count snapshots)."""
    created: dict[str, list[str]] = {}

    async def factory(prefix: str) -> str:
        url = await make_database(prefix)
        created.setdefault(prefix, []).append(url)
        return url

    factory.created = created  # type: ignore[attr-defined]
    return factory


def _month_start(when: datetime, back: int = 0) -> datetime:
    y, m = when.year, when.month - back
    while m <= 0:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=UTC)


@dataclass
class Suite:
    """Every running service by full gRPC service name, and what the seed made."""

    targets: dict[str, Target]
    channels: dict[str, grpc.aio.Channel]  # by context, for health checks
    database_urls: dict[str, str]  # by context
    hints: Hints
    inference_secret: str
    other_builder_secret: str
    revoked_secret: str
    invoice_ids: list[str] = field(default_factory=list)
    # Filled by the fuzz test, read by its invariant checks.
    accepted_events: dict[tuple[str, str], int] = field(default_factory=dict)
    created_keys: dict[str, str] = field(default_factory=dict)  # key id -> builder
    builders_touched: set[str] = field(default_factory=set)

    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing case: keep it short
        return f"Suite({', '.join(t.address for t in self.targets.values())})"


async def _seed_spend(billing_address: str) -> tuple[str, str, str]:
    """A capped control of c1 with thresholds and a lease on it, so spend requests reach past the
    lookups, and a control of c2 the fuzzer may delete (c1's stays for the leases)."""
    from tollgate.billing.v1 import spend_pb2 as spb
    from tollgate.billing.v1 import spend_pb2_grpc

    async with auth_channel(billing_address) as channel:
        spend = spend_pb2_grpc.SpendServiceStub(channel)
        control = spb.SpendControl(
            builder_id=BUILDER,
            customer_id="c1",
            scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER),
            hard_cap=usd("50.00"),
            threshold_percents=[50, 80],
        )
        ctl = (
            await spend.SetSpendControl(spb.SetSpendControlRequest(request_id=rid(), control=control))
        ).status
        lease = await spend.AcquireSpendLease(
            spb.AcquireSpendLeaseRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id="c1",
                control_id=ctl.control.id,
                holder="gw-1",
                amount=usd("5.00"),
            )
        )
        control.customer_id = "c2"
        victim = await spend.SetSpendControl(spb.SetSpendControlRequest(request_id=rid(), control=control))
        return ctl.control.id, lease.lease.id, victim.status.control.id


@pytest.fixture(scope="module")
async def suite(request, stack, make_stack, make_database) -> AsyncIterator[Suite]:  # noqa: F811
    """The suite for one test module; a module may set GATEWAY_RELAY = False so that nothing writes in the
    background (the authorization matrix compares row counts around refused calls)."""
    relay = getattr(request.module, "GATEWAY_RELAY", True)
    now = datetime.now(UTC)
    this_month, last_month = _month_start(now), _month_start(now, 1)
    b, m = stack.billing, stack.metering

    # --- metering: meters for two builders, events for last month
    for builder in (BUILDER, OTHER_BUILDER):
        await create_meters(m, builder)
    day = last_month + timedelta(days=9)
    events = [
        event(BUILDER, cid, "ticket.handled", day, tags={"workflow": "wf1"})
        for cid in ("c1", "c3")
        for _ in range(3)
    ] + [
        event(
            BUILDER, "c1", "ai.request", day, quantities={"provider_cost": "0.012"}, tags={"workflow": "wf1"}
        ),
        event(BUILDER, "c1", "document.processed", day, quantities={"pages": "12"}),
    ]
    await ingest(m, events)

    # --- billing: customers, a plan, subscriptions, a closed month, a payment, a wallet
    for builder, cid in ((BUILDER, "c1"), (BUILDER, "c2"), (BUILDER, "c3"), (OTHER_BUILDER, "c1")):
        await b.CreateCustomer(
            bpb.CreateCustomerRequest(
                request_id=rid(),
                customer=bpb.Customer(
                    id=cid, builder_id=builder, app_id="app-1", currency_code="USD", display_name=cid.upper()
                ),
            )
        )
    await b.SetPlatformFee(
        bpb.SetPlatformFeeRequest(
            request_id=rid(), platform_fee=bpb.PlatformFee(builder_id=BUILDER, percent_of_line="5")
        )
    )
    applied = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="basic", display_name="Basic", yaml=PLAN_YAML
        )
    )
    plan_id = applied.plan.id
    for cid in ("c1", "c3"):
        await b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(),
                builder_id=BUILDER,
                customer_id=cid,
                plan_id=plan_id,
                start_time=ts(last_month),
            )
        )
    await b.ClosePeriod(
        bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(this_month))
    )
    invoices = (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER))).invoices
    assert len(invoices) == 2, invoices
    paid = next(i for i in invoices if i.customer_id == "c3")
    await b.RecordPayment(
        bpb.RecordPaymentRequest(
            request_id=rid(),
            builder_id=BUILDER,
            invoice_id=paid.id,
            amount=paid.amount_due,
            external_reference="seed-payment",
        )
    )
    await b.TopUpWallet(
        bpb.TopUpWalletRequest(request_id=rid(), builder_id=BUILDER, customer_id="c2", amount=usd("25.00"))
    )
    # Only where background writes are welcome: a lease expires (and changes rows) 30 s after its grant.
    control_id, lease_id, victim_control = await _seed_spend(stack.billing_address) if relay else ("", "", "")

    # --- gateway: wired to the real metering, relay on; keys for inference and for revoking
    gw = await make_stack(metering_address=stack.metering_address, relay_enabled=relay)
    inference_secret, _ = await gw.create_key(builder_id=BUILDER, customer_id="c1")
    other_secret, _ = await gw.create_key(builder_id=OTHER_BUILDER, customer_id="c1")
    revoked_secret, revoked = await gw.create_key(builder_id=BUILDER, customer_id="c1")
    await gw.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(request_id=rid(), api_key_id=revoked.id, builder_id=BUILDER),
        metadata=gw.admin_metadata,
        timeout=5,
    )
    # A key the fuzzer may revoke (the one inference uses stays out of its reach).
    _, victim = await gw.create_key(builder_id=BUILDER, customer_id="c2")

    async with AsyncExitStack() as running:
        mch = await running.enter_async_context(
            grpc.aio.insecure_channel(stack.metering_address, options=CHANNEL_OPTIONS)
        )
        bch = await running.enter_async_context(
            grpc.aio.insecure_channel(stack.billing_address, options=CHANNEL_OPTIONS)
        )
        gch = await running.enter_async_context(
            grpc.aio.insecure_channel(gw.grpc_address, options=CHANNEL_OPTIONS)
        )
        channels = {"metering": mch, "billing": bch, "gateway": gch}
        operator = auth_metadata()
        targets = {
            "tollgate.metering.v1.MeteringService": Target(stack.metering_address, mch, operator),
            "tollgate.billing.v1.BillingService": Target(stack.billing_address, bch, operator),
            "tollgate.billing.v1.SpendService": Target(stack.billing_address, bch, operator),
            "tollgate.gateway.v1.GatewayAdminService": Target(gw.grpc_address, gch, tuple(gw.admin_metadata)),
            "tollgate.gateway.v1.InferenceService": Target(
                gw.grpc_address, gch, (("authorization", f"Bearer {inference_secret}"),)
            ),
        }
        if "payouts" in STARTABLE_CONTEXTS:
            address = await _start_payouts(running, make_database, stack)
            pch = await running.enter_async_context(
                grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            )
            channels["payouts"] = pch
            targets["tollgate.payouts.v1.PayoutsService"] = Target(address, pch, operator)
        page_tokens = await _page_tokens(b, m, gw)
        hints = Hints(
            strings={
                "builder_id": [BUILDER, BUILDER, OTHER_BUILDER],
                "customer_id": ["c1", "c2", "c3"],
                "app_id": ["app-1", "app1"],
                "request_id": [FRESH],
                "UsageEvent.id": [FRESH, FRESH, "evt-1"],
                "external_reference": [FRESH, "seed-payment"],
                "type": ["ai.request", "ticket.handled", "document.processed"],
                "event_types": ["ai.request", "ticket.handled", "document.processed"],
                "key": ["documents", "tickets", "llm_cost", "basic", "new-key"],
                "meter_key": ["documents", "tickets", "llm_cost"],
                "provider_cost_meter_key": ["llm_cost"],
                "Meter.quantity": ["provider_cost", "pages"],
                "bucket_quantity": ["pages"],
                "unique_tag": ["workflow"],
                "group_by_tags": ["workflow", "workspace"],
                "Bucket.key": ["1-10", "11-50", "51+"],
                "BucketPrice.bucket": ["1-10", "11-50", "51+"],
                "plan_id": [plan_id],
                "plan_key": ["basic", "pro"],
                "invoice_id": [i.id for i in invoices],
                # Void only the paid invoice (refused): c1's stays open for payments and credit notes.
                "VoidInvoiceRequest.invoice_id": [paid.id],
                "api_key_id": [victim.id],
                "reason": ["The customer asked."],
                "display_name": ["Fuzzed"],
                "billing_email": ["billing@example.com"],
                "percent_of_line": ["5", "0"],
                "percent_of_margin": ["10", "0"],
                "yaml": [PLAN_YAML],
                "page_token": page_tokens,
                "model": ["chat-small"],
                "models": ["chat-small"],
                "role": ["user", "system", "assistant"],
                "content": ["hello there"],
                "provider": list(PROVIDER_NAMES),
                # The fuzzer may repoint provider_a and redefine fuzz-model; chat-small on provider_b
                # and provider_c stays servable, so inference examples get past routing.
                "Provider.name": ["provider_a", "fuzz-provider"],
                "Model.name": ["fuzz-model"],
                "base_url": [p.base_url for p in gw.providers.values()],
                "credential_env": [credential_env(n) for n in PROVIDER_NAMES],
                "upstream_model": [f"{n}-small" for n in PROVIDER_NAMES],
                "Offering.id": ["off_a", "off_b"],
                "order": list(PROVIDER_NAMES),
                "only": ["provider_a", "provider_b"],
                "ignore": ["provider_c"],
                "run_id": ["run-1"],
                "outcome": ["resolved"],
                "payee_id": [BUILDER, OTHER_BUILDER, "provider:provider_a"],
                "period": [last_month.strftime("%Y-%m"), this_month.strftime("%Y-%m")],
                # Loopback only (the stack's BILLING_WEBHOOK_ALLOWED_HOSTS); port 9 refuses at once.
                "SetWebhookEndpointRequest.url": ["http://127.0.0.1:9/alerts", "https://127.0.0.1:9/alerts"],
                "control_id": [control_id] if control_id else [],
                "lease_id": [lease_id] if lease_id else [],
                "DeleteSpendControlRequest.control_id": [victim_control] if victim_control else [],
                "holder": ["gw-1"],
                "degrade_model": ["chat-small"],
            },
            maps={
                "tags": [{"workflow": "wf1", "workspace": "ws1"}],
                "default_tags": [{"workflow": "wf1"}],
                "tag_filters": [{"workflow": "wf1"}],
                "quantities": [{"provider_cost": "0.0004", "pages": "3"}, {"input_tokens": "120"}],
            },
            optional=frozenset(
                {
                    "page_token",
                    "provider_preferences",
                    "models",
                    "stop",
                    "business_units",
                    "metadata",
                    "max_tokens",
                    "Meter.quantity",
                    "unique_tag",
                    "bucket_quantity",
                    "buckets",
                    "tag_filters",
                    "group_by_tags",
                    "ingested_before_time",
                    "as_of_time",
                    "statuses",
                    "Charge.minimum_amount",
                    "Charge.maximum_amount",
                    "provider_cost_meter_key",
                    "Offering.base_url",
                    "Offering.credential_env",
                    "next_plan_id",
                }
            ),
            now=now,
        )
        yield Suite(
            targets=targets,
            channels=channels,
            database_urls={ctx: urls[-1] for ctx, urls in make_database.created.items()},
            hints=hints,
            inference_secret=inference_secret,
            other_builder_secret=other_secret,
            revoked_secret=revoked_secret,
            invoice_ids=[i.id for i in invoices],
        )
    table = report_table()
    if table:
        REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
        REPORT_PATH.write_text(
            f"{table}\n\nknown bugs hit:\n{known_hits_report()}\n\n"
            f"most frequent refusals per RPC:\n{details_report()}\n"
        )


async def _start_payouts(running: AsyncExitStack, make_database, billing_stack) -> str:
    """A payouts server reading this suite's billing (its feed) and metering, stopped with the suite."""
    from payouts.app import start
    from payouts.config import Settings

    wanted = {
        "database_url": await make_database("payouts"),
        "grpc_address": "127.0.0.1:0",
        "metrics_port": None,
        "billing_address": billing_stack.billing_address,
        "metering_address": billing_stack.metering_address,
        # No background consumer: the matrix compares every table before and after refused calls, and a
        # consumer applying earlier entries meanwhile would look like a change. The fuzz test syncs itself.
        "feed_poll_seconds": 0,
        "security": security("payouts"),
    }
    known = {f.name for f in fields(Settings)}
    server = await start(Settings(**{k: v for k, v in wanted.items() if k in known}))
    running.push_async_callback(server.stop, 0)
    return f"127.0.0.1:{server.port}"


async def _page_tokens(b, m, gw) -> list[str]:
    """next_page_tokens the services really issued (page_size 1), so a fuzzed token can be a real one."""
    from tollgate.metering.v1 import metering_pb2 as mpb

    tokens = [
        (await m.ListEvents(mpb.ListEventsRequest(builder_id=BUILDER, page_size=1))).next_page_token,
        (await m.ListMeters(mpb.ListMetersRequest(builder_id=BUILDER, page_size=1))).next_page_token,
        (await b.ListCustomers(bpb.ListCustomersRequest(builder_id=BUILDER, page_size=1))).next_page_token,
        (await b.ListInvoices(bpb.ListInvoicesRequest(builder_id=BUILDER, page_size=1))).next_page_token,
        (await b.ListEarnings(bpb.ListEarningsRequest(builder_id=BUILDER, page_size=1))).next_page_token,
        (
            await gw.admin.ListApiKeys(
                admin_pb2.ListApiKeysRequest(builder_id=BUILDER, page_size=1), metadata=gw.admin_metadata
            )
        ).next_page_token,
    ]
    return [t for t in tokens if t] or [uuid.uuid4().hex]


def pytest_terminal_summary(terminalreporter) -> None:
    table = report_table()
    if table:
        terminalreporter.write_sep("=", "fuzz: status codes per RPC")
        terminalreporter.write_line(table)
        known = known_hits_report(per_bug=2)
        if known:
            terminalreporter.write_line("known bugs hit (see test_fuzz_rpcs.KNOWN_BUGS):")
            terminalreporter.write_line(known)
        if os.environ.get("TOLLGATE_FUZZ_EXAMPLES"):
            terminalreporter.write_line(f"(written to {REPORT_PATH})")
