"""Late-usage lines for a part of a split period, and names that fit a line (domain only)."""

from datetime import UTC, datetime
from decimal import Decimal as D

from billing.domain import (
    NO_PLATFORM_FEE,
    Charge,
    ChargeUsage,
    LateUsage,
    PerUnit,
    late_adjustment_line,
    period_containing,
)

MARCH = period_containing(datetime(2026, 3, 15, tzinfo=UTC))
PART = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC))


def test_a_late_line_of_a_part_names_the_part_and_keeps_its_range():
    tickets = Charge("tickets", "tickets", "Tickets", PerUnit(D("0.80")), included_quantity=D(6))
    late = LateUsage(
        tickets,
        MARCH,
        ChargeUsage(quantity=D(4)),
        ChargeUsage(quantity=D(9)),
        part=PART,
        part_label="desk v1, 2026-03-01 00:00:00 to 2026-03-20 00:00:00 UTC",
    )
    line = late_adjustment_line(late, NO_PLATFORM_FEE, "USD")
    assert line is not None
    assert line.display_name == (
        "Tickets (late usage for 2026-03, desk v1, 2026-03-01 00:00:00 to 2026-03-20 00:00:00 UTC)"
    )
    assert line.late.part == PART
    # 4 within the 6 included (0.00); 9 is 3 over: 2.40. The line is the difference.
    assert (line.quantity, line.amount) == (D(5), D("2.40"))


def test_a_late_line_name_never_exceeds_a_line_name():
    long = Charge("tickets", "tickets", "T" * 256, PerUnit(D(1)))
    late = LateUsage(long, MARCH, ChargeUsage(quantity=D(1)), ChargeUsage(quantity=D(2)), part_label="x" * 80)
    line = late_adjustment_line(late, NO_PLATFORM_FEE, "USD")
    assert line is not None and len(line.display_name) == 256
