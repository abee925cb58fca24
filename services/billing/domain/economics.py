"""Unit economics: what each meter and each workflow tag earned in a month, from finalized invoices.

- Per meter: the sum over the month's finalized invoice lines of that meter (late-usage adjustments
  included: they are billed in the month) of units (line quantities), revenue (line amounts) and the
  three parts of each line's split. Base fees have no meter: they are the row with meter "".
- Per workflow tag and meter: each line's parts are attributed to workflows in proportion to the
  line's workflow quantities, by largest remainder in minor units (the attribution the earnings feed
  uses, billing.domain.earnings), and a workflow's revenue is the sum of its three parts, so every
  row still satisfies revenue = provider cost + platform fee + builder margin and the rows of a line
  sum exactly to it. A line without workflow quantities goes to workflow "" with all its units.
- Margin per unit = builder margin / units, rounded half up to 9 decimal places; none for 0 units.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .money import DOMAIN_CONTEXT, ZERO, allocate, quantize9
from .split import Split


@dataclass(frozen=True)
class EconomicsLine:
    """One finalized invoice line, as stored."""

    currency: str
    meter_key: str
    quantity: Decimal
    amount: Decimal
    split: Split
    workflow_quantities: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True)
class EconomicsRow:
    currency: str
    meter_key: str
    workflow: str
    units: Decimal
    revenue: Decimal
    provider_cost: Decimal
    platform_fee: Decimal
    builder_margin: Decimal

    @property
    def margin_per_unit(self) -> Decimal | None:
        if self.units == 0:
            return None
        with decimal.localcontext(DOMAIN_CONTEXT):
            return quantize9(self.builder_margin / self.units)


def _add(
    rows: dict[tuple[str, str, str], list[Decimal]], key: tuple[str, str, str], parts: Iterable[Decimal]
) -> None:
    acc = rows.setdefault(key, [ZERO] * 5)
    for i, value in enumerate(parts):
        acc[i] += value


def _rows(rows: dict[tuple[str, str, str], list[Decimal]]) -> tuple[EconomicsRow, ...]:
    return tuple(EconomicsRow(c, m, w, *values) for (c, m, w), values in sorted(rows.items()))


def unit_economics(
    lines: Sequence[EconomicsLine],
) -> tuple[tuple[EconomicsRow, ...], tuple[EconomicsRow, ...]]:
    """(per meter, per workflow and meter), each sorted by currency, meter and workflow."""
    meters: dict[tuple[str, str, str], list[Decimal]] = {}
    workflows: dict[tuple[str, str, str], list[Decimal]] = {}
    with decimal.localcontext(DOMAIN_CONTEXT):
        for line in lines:
            s = line.split
            _add(
                meters,
                (line.currency, line.meter_key, ""),
                (line.quantity, line.amount, s.provider_cost, s.platform_fee, s.builder_margin),
            )
            shares = [(wf, q) for wf, q in line.workflow_quantities if q > 0]
            if not shares:
                _add(
                    workflows,
                    (line.currency, line.meter_key, ""),
                    (line.quantity, line.amount, s.provider_cost, s.platform_fee, s.builder_margin),
                )
                continue
            weights = [q for _, q in shares]
            cost, fee, margin = (
                allocate(part, weights, line.currency)
                for part in (s.provider_cost, s.platform_fee, s.builder_margin)
            )
            for i, (wf, q) in enumerate(shares):
                _add(
                    workflows,
                    (line.currency, line.meter_key, wf),
                    (q, cost[i] + fee[i] + margin[i], cost[i], fee[i], margin[i]),
                )
    return _rows(meters), _rows(workflows)
