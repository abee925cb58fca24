"""SpendService controls and policies over real gRPC, PostgreSQL and metering: a builder caps its
customers' spend, the API refuses controls that cannot work (status, field and message), and the
gateway reads each customer's rate card priced exactly as its plan prices the gateway's events."""

from __future__ import annotations

import grpc
import pytest
from billing_kit import dec, field_of, rid
from spend_kit import create_ai_meters, create_customer, money, set_control, spend_stack

from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.billing.v1 import spend_pb2 as spb

BUILDER = "spend-ctl"

COST_PLUS_YAML = """
currency: USD
charges:
  - key: tokens
    meter_key: llm_cost
    display_name: AI model usage
    cost_plus: {markup_percent: 25, fixed_per_request: "0.002"}
  - key: tickets
    meter_key: tickets
    display_name: Tickets
    per_unit: {unit_price: "0.80"}
"""

PER_UNIT_YAML = """
currency: USD
charges:
  - key: calls
    meter_key: ai_calls
    display_name: AI calls
    included_quantity: 1000
    per_unit: {unit_price: "0.015"}
  - key: input
    meter_key: input_tokens
    display_name: Input tokens
    graduated:
      tiers:
        - {up_to: 1000000, unit_price: "0.000002"}
        - {up_to: null, unit_price: "0.0000015", flat_price: "5"}
  - key: bundles
    meter_key: ai_calls
    display_name: Call bundles
    package: {package_size: 3, package_price: "1"}
  - key: runs
    meter_key: distinct_runs
    display_name: Runs
    per_unit: {unit_price: "0.10"}
"""


@pytest.fixture(scope="module")
async def stack(make_database, fast_metering_address):
    async with spend_stack(make_database, fast_metering_address, margin_watch_seconds=0) as s:
        await create_ai_meters(s.metering, BUILDER)
        for cid, cur in (("acme", "USD"), ("beta", "USD"), ("euro", "EUR"), ("plain", "USD")):
            await create_customer(s.billing, BUILDER, cid, cur)
        for key, yaml, cid in (("costplus", COST_PLUS_YAML, "acme"), ("perunit", PER_UNIT_YAML, "beta")):
            applied = await s.billing.ApplyPlanYaml(
                bpb.ApplyPlanYamlRequest(
                    request_id=rid(), builder_id=BUILDER, plan_key=key, display_name=key, yaml=yaml
                )
            )
            await s.billing.Subscribe(
                bpb.SubscribeRequest(
                    request_id=rid(),
                    builder_id=BUILDER,
                    customer_id=cid,
                    plan_id=applied.plan.id,
                    plan_version=1,
                )
            )
        yield s


async def _refused(call, request) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request)
    return info.value


async def test_set_control_creates_then_replaces_by_scope(stack) -> None:
    first = await set_control(
        stack.spend, BUILDER, "acme", hard_cap=money("100.00"), threshold_percents=[80, 50, 100]
    )
    c = first.control
    assert c.id.startswith("spc_") and c.customer_id == "acme"
    assert list(c.threshold_percents) == [50, 80, 100]
    assert dec(c.hard_cap) == 100 and not c.HasField("alert_budget")
    assert c.on_cap == spb.CAP_ACTION_REFUSE
    assert dec(first.spent) == 0 and dec(first.held) == 0 and dec(first.remaining) == 100
    assert first.active_lease_count == 0 and list(first.reached_threshold_percents) == []
    assert first.period_end_time.ToDatetime() > first.period_start_time.ToDatetime()
    # The same scope again replaces the control (same id); another scope is another control.
    second = await set_control(
        stack.spend,
        BUILDER,
        "acme",
        hard_cap=money("250.50"),
        on_cap=spb.CAP_ACTION_DEGRADE,
        degrade_model="small-model",
    )
    assert second.control.id == c.id
    assert dec(second.control.hard_cap) == __import__("decimal").Decimal("250.50")
    assert list(second.control.threshold_percents) == []
    assert second.control.degrade_model == "small-model"
    tag = await set_control(
        stack.spend,
        BUILDER,
        "acme",
        scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_TAG, tag_key="workspace", tag_value="legal"),
        alert_budget=money("40"),
        threshold_percents=[50],
    )
    assert tag.control.id != c.id and not tag.HasField("remaining")
    listed = await stack.spend.ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id="acme")
    )
    assert sorted(s.control.id for s in listed.controls) == sorted([c.id, tag.control.id])


@pytest.mark.parametrize(
    ("fields", "code", "field", "message"),
    [
        (
            {"customer_id": "nobody", "hard_cap": money("1")},
            grpc.StatusCode.NOT_FOUND,
            "control.customer_id",
            "customer 'nobody' not found",
        ),
        (
            {"hard_cap": money("10", "EUR")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.hard_cap.currency_code",
            "control.hard_cap must be in the customer's currency USD, got 'EUR'",
        ),
        (
            {"threshold_percents": [50]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.threshold_percents",
            "thresholds need a hard_cap or an alert_budget to be percents of",
        ),
        (
            {"hard_cap": money("10"), "threshold_percents": [50, 80, 50]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.threshold_percents[2]",
            "threshold 50% is listed twice",
        ),
        (
            {"hard_cap": money("10"), "threshold_percents": [0]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "threshold_percents[0]",
            "control.threshold_percents[0] must be between 1 and 1,000",
        ),
        (
            {"hard_cap": money("10"), "threshold_percents": list(range(1, 12))},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.threshold_percents",
            "control.threshold_percents has more than 10 items",
        ),
        (
            {"hard_cap": money("10"), "on_cap": spb.CAP_ACTION_DEGRADE},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.degrade_model",
            "control.degrade_model is required when on_cap is DEGRADE",
        ),
        (
            {"hard_cap": money("-1")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.hard_cap",
            "control.hard_cap must be at least zero",
        ),
        (
            {"scope": spb.SpendScope()},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.scope.kind",
            "control.scope.kind is required",
        ),
        (
            {"scope": spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_API_KEY)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.scope.api_key_id",
            "control.scope.api_key_id is required for a api_key scope",
        ),
        (
            {"scope": spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_TAG, tag_key="Bad Key", tag_value="x")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "control.scope.tag_key",
            "control.scope.tag_key must be 1 to 64 characters of [a-z0-9_.-]; got 'Bad Key'",
        ),
    ],
)
async def test_set_control_refusals(stack, fields, code, field, message) -> None:
    fields = dict(fields)
    customer = fields.pop("customer_id", "beta")
    fields.setdefault("scope", spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_CUSTOMER))
    request = spb.SetSpendControlRequest(
        request_id=rid(), control=spb.SpendControl(builder_id=BUILDER, customer_id=customer, **fields)
    )
    err = await _refused(stack.spend.SetSpendControl, request)
    assert err.code() == code
    assert err.details() == message
    if code == grpc.StatusCode.INVALID_ARGUMENT:  # the field travels as a BadRequest violation
        assert field_of(err) in (field, f"control.{field}")
    listed = await stack.spend.ListSpendControls(
        spb.ListSpendControlsRequest(builder_id=BUILDER, customer_id="beta")
    )
    assert list(listed.controls) == []


async def test_idempotent_set_and_delete(stack) -> None:
    request = spb.SetSpendControlRequest(
        request_id=rid(),
        control=spb.SpendControl(
            builder_id=BUILDER,
            customer_id="euro",
            scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_API_KEY, api_key_id="key_1"),
            hard_cap=money("7.5", "EUR"),
        ),
    )
    first = await stack.spend.SetSpendControl(request)
    again = await stack.spend.SetSpendControl(request)
    assert again == first
    changed = spb.SetSpendControlRequest()
    changed.CopyFrom(request)
    changed.control.hard_cap.units = 8
    err = await _refused(stack.spend.SetSpendControl, changed)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    delete = spb.DeleteSpendControlRequest(
        request_id=rid(), builder_id=BUILDER, control_id=first.status.control.id
    )
    gone = await stack.spend.DeleteSpendControl(delete)
    assert gone.control == first.status.control
    assert await stack.spend.DeleteSpendControl(delete) == gone  # a retry: the first reply
    err = await _refused(
        stack.spend.DeleteSpendControl,
        spb.DeleteSpendControlRequest(
            request_id=rid(), builder_id=BUILDER, control_id=first.status.control.id
        ),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == f"spend control '{first.status.control.id}' not found"


async def test_list_controls_pages(stack) -> None:
    for i in range(3):
        await set_control(
            stack.spend,
            BUILDER,
            "plain",
            scope=spb.SpendScope(kind=spb.SPEND_SCOPE_KIND_TAG, tag_key="team", tag_value=f"t{i}"),
            hard_cap=money("1"),
        )
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await stack.spend.ListSpendControls(
            spb.ListSpendControlsRequest(
                builder_id=BUILDER, customer_id="plain", page_size=2, page_token=token
            )
        )
        seen += [s.control.scope.tag_value for s in page.controls]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == ["t0", "t1", "t2"]
    err = await _refused(
        stack.spend.ListSpendControls,
        spb.ListSpendControlsRequest(builder_id=BUILDER, page_token="eyJ4IjoxfQ"),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "page_token is not a token this service issued"


async def test_policy_of_a_cost_plus_plan(stack) -> None:
    reply = await stack.spend.GetSpendPolicy(
        spb.GetSpendPolicyRequest(builder_id=BUILDER, customer_id="acme")
    )
    p = reply.policy
    assert p.currency_code == "USD" and p.lease_seconds == 30
    # tickets' meter reads ticket.handled, not the gateway's events: not on the card.
    assert [
        (i.charge_key, i.kind, i.markup_percent, i.fixed_per_event, list(i.statuses), i.event_type)
        for i in p.rate_card
    ] == [("tokens", spb.RATE_KIND_COST_PLUS, "25", "0.002", ["succeeded"], "ai.request")]
    assert len(p.controls) >= 2


async def test_policy_of_a_per_unit_plan(stack) -> None:
    reply = await stack.spend.GetSpendPolicy(
        spb.GetSpendPolicyRequest(builder_id=BUILDER, customer_id="beta")
    )
    items = [
        (i.charge_key, i.kind, i.unit_price, i.quantity, list(i.statuses)) for i in reply.policy.rate_card
    ]
    assert items == [
        # included quantities are not subtracted: the full unit price from the first call.
        ("calls", spb.RATE_KIND_PER_EVENT, "0.015", "", ["succeeded", "failed"]),
        # the dearest tier's unit price; the flat fee is not per request.
        ("input", spb.RATE_KIND_PER_QUANTITY, "0.000002", "input_tokens", ["succeeded"]),
        # 1 / 3 rounded up at nine places.
        ("bundles", spb.RATE_KIND_PER_EVENT, "0.333333334", "", ["succeeded", "failed"]),
        # runs (UNIQUE_COUNT) is not priced per request.
    ]


async def test_policy_without_subscription_and_unknown_customer(stack) -> None:
    reply = await stack.spend.GetSpendPolicy(
        spb.GetSpendPolicyRequest(builder_id=BUILDER, customer_id="plain")
    )
    assert list(reply.policy.rate_card) == [] and reply.policy.currency_code == "USD"
    err = await _refused(
        stack.spend.GetSpendPolicy, spb.GetSpendPolicyRequest(builder_id=BUILDER, customer_id="ghost")
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "customer 'ghost' not found"
