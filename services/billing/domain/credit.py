"""Where a credit note's money goes, and how a refund moves.

Rules (quote these):

- A credit note first reduces what the invoice still asks for: due_reduced = min(amount, amount due),
  where amount due = max(0, total - wallet_applied - credited - amount_paid) before the note.
- The rest (amount - due_reduced) covers money already received (payments and wallet applied). It is
  settled as the builder asks: WALLET credits the customer's wallet with it, REFUND records a refund
  of it, PENDING until marked. With a rest and no settlement the note is refused (INVALID_ARGUMENT
  naming `settlement`). Without a rest the note has no settlement, whatever was asked.
- The three parts are whole minor units (the amount and the amount due are) and sum exactly to the
  amount: due_reduced + wallet_credited + refunded = amount.
- The settlement never changes the earnings: the feed reverses the credited amount's split either way.
- A refund moves once, from PENDING: to PAID (with the processor's reference) or to FAILED (with a
  reason; its amount then goes to the customer's wallet). Any other move is FAILED_PRECONDITION.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from common.errors import FailedPrecondition, InvalidArgument

from .money import ZERO


class Settlement(enum.StrEnum):
    NONE = ""
    WALLET = "wallet"
    REFUND = "refund"


class RefundState(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True)
class CreditParts:
    """A credit note's amount split by where it goes; the parts sum exactly to the amount."""

    settlement: Settlement
    due_reduced: Decimal
    wallet_credited: Decimal
    refunded: Decimal

    @property
    def total(self) -> Decimal:
        return self.due_reduced + self.wallet_credited + self.refunded


def settle_credit(amount: Decimal, amount_due: Decimal, requested: Settlement) -> CreditParts:
    """Split a credit of `amount` against an invoice that still asks for `amount_due` (module rules)."""
    if amount <= 0:
        raise InvalidArgument(f"amount must be greater than zero, got {amount}", field="amount")
    due_reduced = min(amount, max(ZERO, amount_due))
    rest = amount - due_reduced
    if rest == 0:
        return CreditParts(Settlement.NONE, due_reduced, ZERO, ZERO)
    if requested is Settlement.NONE:
        raise InvalidArgument(
            f"settlement is required: {rest} of the credit covers money already received "
            f"(only {due_reduced} was still due); choose WALLET or REFUND",
            field="settlement",
        )
    if requested is Settlement.WALLET:
        return CreditParts(Settlement.WALLET, due_reduced, rest, ZERO)
    return CreditParts(Settlement.REFUND, due_reduced, ZERO, rest)


def check_outcome(target: RefundState, reference: str, failure_reason: str) -> None:
    """Check that a refund outcome is PAID with a reference or FAILED with a reason (module rules)."""
    if target is RefundState.PAID:
        if not reference:
            raise InvalidArgument(
                "external_reference is required to mark a refund PAID", field="external_reference"
            )
        if failure_reason:
            raise InvalidArgument("failure_reason is only for a FAILED refund", field="failure_reason")
    elif target is RefundState.FAILED:
        if not failure_reason:
            raise InvalidArgument(
                "failure_reason is required to mark a refund FAILED", field="failure_reason"
            )
        if reference:
            raise InvalidArgument("external_reference is only for a PAID refund", field="external_reference")
    else:
        raise InvalidArgument("state must be PAID or FAILED", field="state")


def check_move(current: RefundState) -> None:
    """Only a PENDING refund moves (module rules)."""
    if current is not RefundState.PENDING:
        raise FailedPrecondition(
            f"the refund is already {current.value.upper()}; only a PENDING refund can be marked",
            field="state",
        )
