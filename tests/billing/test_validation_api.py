"""Bad input gets a clear status naming the field, and leaves nothing behind; retries are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from billing_kit import at, field_of, rid, ts, usd

from common.money import from_timestamp
from tollgate.billing.v1 import billing_pb2 as bpb

BUILDER = "agency-validation"


async def _fails(call, code: grpc.StatusCode, field: str | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    if field is not None and code == grpc.StatusCode.INVALID_ARGUMENT:
        # INVALID_ARGUMENT carries a google.rpc.BadRequest naming the field.
        assert field_of(err.value) == field, (field_of(err.value), err.value.details())
    elif field is not None:
        # Other codes name the subject in the message ("customer 'x' already exists").
        assert field.split(".")[0].removesuffix("_id") in err.value.details(), err.value.details()
    return err.value


def _customer(cid: str = "c1", **kw) -> bpb.Customer:
    values = {"id": cid, "builder_id": BUILDER, "app_id": "app", "currency_code": "USD", "display_name": cid}
    values.update(kw)
    return bpb.Customer(**values)


async def test_customer_fields_are_validated_by_name(stack) -> None:
    b = stack.billing
    await _fails(
        b.CreateCustomer(
            bpb.CreateCustomerRequest(request_id=rid(), customer=_customer(currency_code="XYZ"))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "customer.currency_code",
    )
    await _fails(
        b.CreateCustomer(bpb.CreateCustomerRequest(request_id=rid(), customer=_customer(cid=""))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "customer.id",
    )
    await _fails(
        b.CreateCustomer(bpb.CreateCustomerRequest(request_id="", customer=_customer())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request_id",
    )
    await _fails(
        b.CreateCustomer(
            bpb.CreateCustomerRequest(request_id=rid(), customer=_customer(billing_email="not-an-email"))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "customer.billing_email",
    )
    # Nothing half-written: none of the rejected customers exists.
    listed = await b.ListCustomers(bpb.ListCustomersRequest(builder_id=BUILDER))
    assert list(listed.customers) == []


async def test_retry_with_same_request_id_returns_the_first_customer(stack) -> None:
    b = stack.billing
    request_id = rid()
    first = await b.CreateCustomer(
        bpb.CreateCustomerRequest(request_id=request_id, customer=_customer("c-retry"))
    )
    again = await b.CreateCustomer(
        bpb.CreateCustomerRequest(request_id=request_id, customer=_customer("c-retry"))
    )
    assert again == first
    await _fails(
        b.CreateCustomer(bpb.CreateCustomerRequest(request_id=request_id, customer=_customer("c-other"))),
        grpc.StatusCode.ALREADY_EXISTS,
        "request_id",
    )
    await _fails(
        b.CreateCustomer(bpb.CreateCustomerRequest(request_id=rid(), customer=_customer("c-retry"))),
        grpc.StatusCode.ALREADY_EXISTS,
        "customer.id",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.GetCustomer(bpb.GetCustomerRequest(builder_id=BUILDER, customer_id="c-other"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_plan_errors_name_the_path_of_the_bad_price(stack) -> None:
    b = stack.billing
    bad_yaml = (
        "currency: USD\ncharges:\n  - key: x\n    meter_key: x\n    display_name: X\n"
        '    per_unit: {unit_price: "-1"}\n'
    )
    err = await _fails(
        b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key="p", yaml=bad_yaml)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field_of(err) == "yaml.charges[0].per_unit.unit_price"
    await _fails(
        b.ApplyPlanYaml(
            bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key="p", yaml="currency: [")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "yaml",
    )
    plan = await b.CreatePlan(
        bpb.CreatePlanRequest(
            request_id=rid(),
            plan=bpb.Plan(builder_id=BUILDER, key="tiered", display_name="Tiered", currency_code="USD"),
        )
    )
    tiers = [
        bpb.Tier(up_to="100", unit_price="0.10"),
        bpb.Tier(up_to="50", unit_price="0.05"),
        bpb.Tier(unit_price="0.01"),
    ]
    await _fails(
        b.PublishPlanVersion(
            bpb.PublishPlanVersionRequest(
                request_id=rid(),
                builder_id=BUILDER,
                version=bpb.PlanVersion(
                    plan_id=plan.plan.id,
                    charges=[
                        bpb.Charge(
                            key="calls",
                            meter_key="calls",
                            display_name="Calls",
                            graduated=bpb.GraduatedPrice(tiers=tiers),
                        )
                    ],
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "version.charges[0].graduated.tiers[1].up_to",
    )
    got = await b.GetPlan(bpb.GetPlanRequest(builder_id=BUILDER, plan_id=plan.plan.id))
    assert list(got.plan.versions) == []
    await _fails(
        b.GetPlan(bpb.GetPlanRequest(builder_id=BUILDER, plan_id="plan_missing")),
        grpc.StatusCode.NOT_FOUND,
        None,
    )


async def test_plan_change_takes_effect_at_the_next_period_boundary(stack) -> None:
    b = stack.billing
    await b.CreateCustomer(bpb.CreateCustomerRequest(request_id=rid(), customer=_customer("c-change")))
    yaml = 'currency: USD\nbase_fee: "10.00"\ncharges: []\n'
    small = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(request_id=rid(), builder_id=BUILDER, plan_key="small", yaml=yaml)
    )
    big = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="big", yaml=yaml.replace("10.00", "99.00")
        )
    )
    # Applying identical pricing again publishes nothing new.
    same = await b.ApplyPlanYaml(
        bpb.ApplyPlanYamlRequest(
            request_id=rid(), builder_id=BUILDER, plan_key="big", yaml=yaml.replace("10.00", "99.00")
        )
    )
    assert not same.published and same.version.version == 1
    await _fails(
        b.Subscribe(
            bpb.SubscribeRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="c-change", plan_id="plan_missing"
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "plan_id",
    )
    # Subscribed from the start of this month, so the preview is not prorated (see test_proration_api).
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await b.Subscribe(
        bpb.SubscribeRequest(
            request_id=rid(),
            builder_id=BUILDER,
            customer_id="c-change",
            plan_id=small.plan.id,
            start_time=ts(this_month),
        )
    )
    changed = await b.ChangePlan(
        bpb.ChangePlanRequest(
            request_id=rid(), builder_id=BUILDER, customer_id="c-change", plan_id=big.plan.id
        )
    )
    now = datetime.now(UTC)
    boundary = at(now.year + (now.month == 12), now.month % 12 + 1)
    sub = changed.subscription
    assert (sub.plan_id, sub.next_plan_id, sub.next_plan_version) == (small.plan.id, big.plan.id, 1)
    assert from_timestamp(sub.change_time) == boundary
    # This month is still previewed under the current plan.
    preview = await b.PreviewInvoice(bpb.PreviewInvoiceRequest(builder_id=BUILDER, customer_id="c-change"))
    assert preview.invoice.status == bpb.INVOICE_STATUS_DRAFT
    assert (preview.invoice.total.units, preview.invoice.total.nanos) == (10, 0)


async def test_close_and_money_inputs_are_checked(stack) -> None:
    b = stack.billing
    await _fails(
        b.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(at(2026, 3, 15)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "period_end_time",
    )
    await _fails(
        b.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(at(2099, 1, 1)))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    # Past the stated range (2000-01-01 up to 2100-01-01): a bad argument, not a period to wait for.
    await _fails(
        b.ClosePeriod(
            bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER, period_end_time=ts(at(2999, 1, 1)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "period_end_time",
    )
    await _fails(
        b.ClosePeriod(bpb.ClosePeriodRequest(request_id=rid(), builder_id=BUILDER)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "period_end_time",
    )
    await b.CreateCustomer(bpb.CreateCustomerRequest(request_id=rid(), customer=_customer("c-wallet")))
    await _fails(
        b.TopUpWallet(
            bpb.TopUpWalletRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="c-wallet", amount=usd("0")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "amount",
    )
    await _fails(
        b.TopUpWallet(
            bpb.TopUpWalletRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="c-wallet", amount=usd("1.005")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "amount",
    )
    eur = usd("5.00")
    eur.currency_code = "EUR"
    await _fails(
        b.TopUpWallet(
            bpb.TopUpWalletRequest(request_id=rid(), builder_id=BUILDER, customer_id="c-wallet", amount=eur)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "amount.currency_code",
    )
    await _fails(
        b.TopUpWallet(
            bpb.TopUpWalletRequest(
                request_id=rid(), builder_id=BUILDER, customer_id="nobody", amount=usd("5.00")
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        None,
    )
    wallet = await b.GetWallet(bpb.GetWalletRequest(builder_id=BUILDER, customer_id="c-wallet"))
    assert (wallet.wallet.balance.units, wallet.wallet.balance.nanos) == (0, 0)
    await _fails(
        b.GetInvoice(bpb.GetInvoiceRequest(builder_id=BUILDER, invoice_id="inv_missing")),
        grpc.StatusCode.NOT_FOUND,
    )
    await _fails(
        b.RecordPayment(
            bpb.RecordPaymentRequest(
                request_id=rid(),
                builder_id=BUILDER,
                invoice_id="inv_missing",
                amount=usd("1.00"),
                external_reference="",
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "external_reference",
    )
    await _fails(
        b.ListEarnings(bpb.ListEarningsRequest(builder_id=BUILDER, page_token="%%%")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )
    await _fails(
        b.SetPlatformFee(
            bpb.SetPlatformFeeRequest(
                request_id=rid(), platform_fee=bpb.PlatformFee(builder_id=BUILDER, percent_of_line="120")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "platform_fee.percent_of_line",
    )
