"""The API edge's limits (billing/validation.py, stated in billing.proto): each strange input is
INVALID_ARGUMENT naming its field (or FAILED_PRECONDITION where the state decides), never INTERNAL,
and nothing is written."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from billing_kit import dec, field_of, rid, usd

from billing.validation import check_coverage
from tollgate.billing.v1 import billing_pb2 as bpb
from tollgate.type.v1 import money_pb2

BUILDER = "agency-edge"
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def _refused(call, field: str, code: grpc.StatusCode = INVALID) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    if code == INVALID:
        assert field_of(err.value) == field, (field_of(err.value), err.value.details())
    return err.value.details()


def _token(cursor: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def _customer(**kw) -> bpb.CreateCustomerRequest:
    values = {"id": "c1", "builder_id": BUILDER, "app_id": "app", "currency_code": "USD", "display_name": "C"}
    values.update(kw)
    return bpb.CreateCustomerRequest(request_id=rid(), customer=bpb.Customer(**values))


def test_every_request_field_has_a_rule() -> None:
    assert check_coverage() == []


async def test_nul_overlong_and_partial_pattern_strings_are_refused_by_field(stack) -> None:
    b = stack.billing
    await _refused(b.CreateCustomer(_customer(id="c\x00")), "customer.id")
    await _refused(b.CreateCustomer(_customer(id="c" * 129)), "customer.id")
    await _refused(b.CreateCustomer(_customer(display_name="n" * 257)), "customer.display_name")
    await _refused(b.CreateCustomer(_customer(billing_email="a@b\x00")), "customer.billing_email")
    await _refused(b.CreateCustomer(_customer(currency_code="usd")), "customer.currency_code")
    refused = _customer()
    refused.request_id = "has space"
    await _refused(b.CreateCustomer(refused), "request_id")
    # Patterns match the whole string: a valid prefix followed by anything else is refused.
    await _refused(
        b.CreatePlan(
            bpb.CreatePlanRequest(
                request_id=rid(),
                plan=bpb.Plan(builder_id=BUILDER, key="basic\nextra", display_name="P", currency_code="USD"),
            )
        ),
        "plan.key",
    )
    await _refused(
        b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(
                request_id=rid(), builder_id=BUILDER, plan_key="ok-key!", yaml="currency: USD\n"
            )
        ),
        "plan_key",
    )
    await _refused(
        b.GetInvoice(bpb.GetInvoiceRequest(builder_id=BUILDER, invoice_id="inv_1 OR 1=1")), "invoice_id"
    )
    await _refused(
        b.VoidInvoice(
            bpb.VoidInvoiceRequest(
                request_id=rid(), builder_id=BUILDER, invoice_id="inv_x", reason="r" * 1001
            )
        ),
        "reason",
    )
    assert list((await b.ListCustomers(bpb.ListCustomersRequest(builder_id=BUILDER))).customers) == []


async def test_an_error_quotes_the_callers_value_truncated(stack) -> None:
    long_key = "Upper" + "x" * 55  # 60 characters: within the length, outside the pattern
    details = await _refused(
        stack.billing.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key=long_key, yaml="a: 1\n")
        ),
        "plan_key",
    )
    assert long_key not in details and long_key[:40] in details


@pytest.mark.parametrize(
    "rpc,request_factory",
    [
        ("ListCustomers", lambda t: bpb.ListCustomersRequest(builder_id=BUILDER, page_token=t)),
        ("ListPlans", lambda t: bpb.ListPlansRequest(builder_id=BUILDER, page_token=t)),
        ("ListInvoices", lambda t: bpb.ListInvoicesRequest(builder_id=BUILDER, page_token=t)),
        ("ListEarnings", lambda t: bpb.ListEarningsRequest(builder_id=BUILDER, page_token=t)),
    ],
)
@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "A" * 600,
        _token([1, 2]),
        _token({}),
        _token({"id": 5}),
        _token({"key": None}),
        _token({"id": "c\u0000"}),
        _token({"p": "not a date", "n": 1}),
        _token({"p": "2020-01-01T00:00:00", "n": 1}),
        _token({"p": "0001-01-01T00:00:00+00:00", "n": 1}),
        _token({"p": "2020-01-01T00:00:00+00:00", "n": 2**70}),
        _token({"s": True}),
        _token({"s": -1}),
        _token({"s": 1.5}),
        _token({"s": "12"}),
        _token({"s": 2**70}),
        base64.urlsafe_b64encode(b'{"s": Infinity}').decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
    ],
)
async def test_page_tokens_billing_did_not_issue_are_invalid_argument(
    stack, rpc, request_factory, token
) -> None:
    details = await _refused(getattr(stack.billing, rpc)(request_factory(token)), "page_token")
    assert token not in details


@pytest.mark.parametrize(
    "seconds,nanos",
    [(-62135596800, 0), (0, 0), (946684799, 999999999), (4102444800, 0), (253402300799, 0), (1700000000, -1)],
)
async def test_timestamps_outside_2000_to_2100_are_refused(stack, seconds, nanos) -> None:
    request = bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER)
    request.period_end_time.seconds = seconds
    request.period_end_time.nanos = nanos
    await _refused(stack.billing.ClosePeriod(request), "period_end_time")
    preview = bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="c1")
    preview.as_of_time.seconds = seconds
    preview.as_of_time.nanos = nanos
    await _refused(stack.billing.PreviewInvoice(preview), "as_of_time")


@pytest.mark.parametrize(
    "units,nanos",
    [
        (10**15, 0),
        (-(10**15), 0),
        (2**63 - 1, 999_999_999),
        (1, -500_000_000),
        (-1, 500_000_000),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
        (0, 2**31 - 1),
    ],
)
async def test_strange_money_is_refused_before_any_lookup(stack, units, nanos) -> None:
    amount = money_pb2.Money(currency_code="USD", units=units, nanos=nanos)
    await _refused(
        stack.billing.TopUpWallet(
            bpb.TopUpWalletRequest(request_id=rid(), builder_id=BUILDER, customer_id="nobody", amount=amount)
        ),
        "amount",
    )
    await _refused(
        stack.billing.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(),
                builder_id=BUILDER,
                invoice_id="inv_x",
                amount=amount,
                external_reference="r",
            )
        ),
        "amount",
    )


async def test_a_top_up_that_would_pass_the_maximum_balance_is_refused_and_changes_nothing(stack) -> None:
    b = stack.billing
    await b.CreateCustomer(_customer(id="rich"))
    big = money_pb2.Money(currency_code="USD", units=999_999_999_999_999, nanos=990_000_000)
    await b.TopUpWallet(
        bpb.TopUpWalletRequest(request_id=rid(), builder_id=BUILDER, customer_id="rich", amount=big)
    )
    details = await _refused(
        b.TopUpWallet(
            bpb.TopUpWalletRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="rich", amount=usd("0.02")
            )
        ),
        "amount",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "maximum balance" in details
    wallet = (await b.GetWallet(bpb.GetWalletRequest(builder_id=BUILDER, customer_id="rich"))).wallet
    assert str(dec(wallet.balance)) == "999999999999999.990000000"
    assert len(wallet.transactions) == 1


async def test_unknown_enum_values_are_refused(stack) -> None:
    b = stack.billing
    request = bpb.ListInvoicesRequest(builder_id=BUILDER)
    request.status = 99  # type: ignore[assignment]
    await _refused(b.ListInvoices(request), "status")
    publish = bpb.PublishPlanVersionRequest(
        request_id=rid(), builder_id=BUILDER, version=bpb.PlanVersion(plan_id="plan_x", base_fee=usd("1"))
    )
    publish.version.billing_interval = 7  # type: ignore[assignment]
    await _refused(b.PublishPlanVersion(publish), "version.billing_interval")


BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
currency: USD
charges: *i
"""


@pytest.mark.parametrize(
    "yaml_text,field,needle",
    [
        (BILLION_LAUGHS, "yaml", "aliases"),
        ("currency: USD\nx: " + "[" * 5000 + "]" * 5000 + "\n", "yaml", "nested deeper"),
        ("currency: USD\nbase_fee: " + "9" * 6000 + "\n", "yaml", "YAML"),
        ("currency: USD\n? [a, b]\n: 1\n", "yaml", "YAML"),
        (
            'currency: USD\nbase_fee: "1.00"\nbase_fee_display_name: "a\\0b"\n',
            "yaml.base_fee_display_name",
            "control characters",
        ),
        ("# " + "x" * (64 * 1024) + "\ncurrency: USD\n", "yaml", "at most 65536 characters"),
    ],
)
async def test_hostile_plan_yaml_is_refused(stack, yaml_text, field, needle) -> None:
    details = await _refused(
        stack.billing.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key="hostile", yaml=yaml_text)
        ),
        field,
    )
    assert needle in details, details
    plans = await stack.billing.ListPlans(bpb.ListPlansRequest(builder_id=BUILDER))
    assert [p.key for p in plans.plans] == []


async def test_a_plan_charge_name_longer_than_an_invoice_line_holds_is_refused(stack) -> None:
    yaml_text = (
        "currency: USD\ncharges:\n  - key: docs\n    meter_key: documents\n"
        f"    display_name: {'D' * 257}\n    per_unit: {{unit_price: '0.5'}}\n"
    )
    await _refused(
        stack.billing.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key="long", yaml=yaml_text)
        ),
        "yaml.charges[0].display_name",
    )
