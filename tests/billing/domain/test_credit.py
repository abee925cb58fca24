from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.credit import RefundState, Settlement, check_move, check_outcome, settle_credit
from common.errors import FailedPrecondition, InvalidArgument


def test_a_credit_within_what_is_due_only_reduces_it_and_needs_no_settlement():
    parts = settle_credit(D("20.00"), D("120.00"), Settlement.NONE)
    assert (parts.settlement, parts.due_reduced, parts.wallet_credited, parts.refunded) == (
        Settlement.NONE,
        D("20.00"),
        0,
        0,
    )
    # asked for, but nothing to settle: none recorded
    assert settle_credit(D("120.00"), D("120.00"), Settlement.REFUND).settlement is Settlement.NONE


def test_the_rest_of_a_credit_beyond_the_due_goes_where_the_builder_says():
    wallet = settle_credit(D("100.00"), D("70.00"), Settlement.WALLET)
    assert (wallet.due_reduced, wallet.wallet_credited, wallet.refunded) == (D("70.00"), D("30.00"), 0)
    refund = settle_credit(D("30.00"), D("0"), Settlement.REFUND)
    assert (refund.settlement, refund.due_reduced, refund.wallet_credited, refund.refunded) == (
        Settlement.REFUND,
        0,
        0,
        D("30.00"),
    )


def test_a_rest_without_a_settlement_is_refused_naming_settlement():
    with pytest.raises(InvalidArgument) as err:
        settle_credit(D("70.01"), D("70.00"), Settlement.NONE)
    assert err.value.field == "settlement"
    assert "0.01" in err.value.message


@given(
    amount=st.integers(1, 10**9).map(lambda n: D(n).scaleb(-2)),
    due=st.integers(-(10**9), 10**9).map(lambda n: D(n).scaleb(-2)),
    settlement=st.sampled_from([Settlement.WALLET, Settlement.REFUND]),
)
def test_the_parts_are_never_negative_and_sum_exactly_to_the_credit(amount, due, settlement):
    parts = settle_credit(amount, due, settlement)
    assert parts.total == amount
    assert min(parts.due_reduced, parts.wallet_credited, parts.refunded) >= 0
    assert parts.due_reduced == min(amount, max(due, D(0)))
    assert parts.wallet_credited == 0 or parts.refunded == 0


def test_a_refund_outcome_needs_its_detail_and_only_its_detail():
    check_outcome(RefundState.PAID, "re_1", "")
    check_outcome(RefundState.FAILED, "", "card closed")
    for target, reference, reason, field in [
        (RefundState.PAID, "", "", "external_reference"),
        (RefundState.PAID, "re_1", "why", "failure_reason"),
        (RefundState.FAILED, "", "", "failure_reason"),
        (RefundState.FAILED, "re_1", "why", "external_reference"),
        (RefundState.PENDING, "", "", "state"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            check_outcome(target, reference, reason)
        assert err.value.field == field


def test_only_a_pending_refund_moves():
    check_move(RefundState.PENDING)
    for state in (RefundState.PAID, RefundState.FAILED):
        with pytest.raises(FailedPrecondition):
            check_move(state)
