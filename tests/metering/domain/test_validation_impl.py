"""Implementation checks of metering's pure domain: the fast validation path agrees with the slow,
rule-naming one, and the content hash depends on content only (never on how it was spelled)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metering.domain.events import EventIn, Invalid, ValidEvent, normalise_quantity, validate_event
from metering.domain.meters import MeterError, new_spec

NOW_US = 1_790_000_000_000_000
TOLERANCE_US = 300_000_000


def _event(**overrides) -> EventIn:
    fields = dict(
        id="e1",
        type="ai.request",
        occurred_us=NOW_US - 1_000_000,
        builder_id="b1",
        app_id="app",
        customer_id="c1",
        status=1,
        run_id="r1",
        tags={"workflow": "intake"},
        quantities={"input_tokens": "1200"},
    )
    fields.update(overrides)
    return EventIn(**fields)


def _check(event: EventIn) -> ValidEvent | Invalid:
    return validate_event(0, event, now_us=NOW_US, future_tolerance_us=TOLERANCE_US)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0", "0"),
        ("007.50", "7.5"),
        (".5", "0.5"),
        ("1.", "1"),
        ("-0", "0"),
        ("0.000000001", "0.000000001"),
        (" 2\n", "2"),
    ],
)
def test_equal_quantities_normalise_to_one_literal(text: str, canonical: str) -> None:
    assert normalise_quantity(text) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "is negative"),
        ("NaN", "is not finite"),
        ("Infinity", "is not finite"),
        ("1e3", "is not a decimal number"),
        ("0.0000000001", "has more than 9 decimal places"),
        ("1" * 30, "has more than 29 digits before the point"),
        ("", "is empty"),
    ],
)
def test_bad_quantities_are_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_quantity(text)


def test_quantities_equal_as_numbers_give_the_same_hash() -> None:
    a = _check(_event(quantities={"input_tokens": "1200", "cost": "0.50"}))
    b = _check(_event(quantities={"cost": "0.5", "input_tokens": "001200"}))
    assert isinstance(a, ValidEvent) and isinstance(b, ValidEvent)
    assert a.content_hash == b.content_hash
    assert a.quantities_json == '{"cost":0.5,"input_tokens":1200}'


def test_any_content_change_changes_the_hash() -> None:
    base = _check(_event())
    assert isinstance(base, ValidEvent)
    for change in (
        {"type": "workflow.run"},
        {"occurred_us": NOW_US - 2_000_000},
        {"app_id": "other"},
        {"customer_id": "c2"},
        {"status": 2},
        {"run_id": "r2"},
        {"tags": {"workflow": "triage"}},
        {"quantities": {"input_tokens": "1201"}},
    ):
        other = _check(_event(**change))
        assert isinstance(other, ValidEvent)
        assert other.content_hash != base.content_hash, change


def test_an_invalid_event_names_the_first_broken_rule_and_field() -> None:
    result = validate_event(
        3, _event(quantities={"pages": "-2"}), now_us=NOW_US, future_tolerance_us=TOLERANCE_US
    )
    assert result == Invalid(3, "quantity pages is negative", "events[3].quantities.pages")


def test_nul_characters_are_invalid_because_postgres_text_cannot_hold_them() -> None:
    result = _check(_event(tags={"workflow": "in\x00take"}))
    assert isinstance(result, Invalid) and result.field == "events[0].tags.workflow"


# Protobuf strings are valid UTF-8: no lone surrogates.
tag_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@given(tags=st.dictionaries(tag_text.filter(bool), tag_text, max_size=5))
def test_tags_json_is_what_json_dumps_writes_for_any_text(tags: dict[str, str]) -> None:
    result = _check(_event(tags=tags))
    assert isinstance(result, ValidEvent)
    expected = json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))
    assert result.tags_json == expected


def test_meter_rules_quantity_only_for_sum_max_latest() -> None:
    common = dict(
        builder_id="b1",
        key="docs",
        display_name="",
        event_types=["document.processed"],
        unique_tag="",
        tag_filters={},
        statuses=[],
        bucket_quantity="",
        buckets=[],
    )
    with pytest.raises(MeterError) as missing:
        new_spec(aggregation=2, quantity="", **common)
    assert missing.value.field == "meter.quantity"
    with pytest.raises(MeterError) as forbidden:
        new_spec(aggregation=1, quantity="pages", **common)
    assert forbidden.value.field == "meter.quantity"
    spec = new_spec(aggregation=1, quantity="", **common)
    assert [int(s) for s in spec.statuses] == [1]


def test_buckets_must_ascend_and_end_open() -> None:
    common = dict(
        builder_id="b1",
        key="docs",
        display_name="",
        event_types=["document.processed"],
        aggregation=1,
        quantity="",
        unique_tag="",
        tag_filters={},
        statuses=[],
        bucket_quantity="pages",
    )
    spec = new_spec(buckets=[("1-10", "10"), ("11-100", "100"), ("101+", "")], **common)
    assert [b.max_value for b in spec.buckets] == [Decimal(10), Decimal(100), None]
    for bad, field in (
        ([("a", "10"), ("b", "5"), ("c", "")], "meter.buckets[1].max_value"),
        ([("a", "10"), ("a", "")], "meter.buckets[1].key"),
        ([("a", ""), ("b", "")], "meter.buckets[0].max_value"),
        ([("a", "10"), ("b", "20")], "meter.buckets[1].max_value"),
    ):
        with pytest.raises(MeterError) as error:
            new_spec(buckets=bad, **common)
        assert error.value.field == field


def test_an_event_before_the_retention_window_is_invalid_and_one_at_its_start_is_valid() -> None:
    day_us = 86_400_000_000
    oldest_us = NOW_US - 400 * day_us

    def check(occurred_us: int) -> ValidEvent | Invalid:
        return validate_event(
            2,
            _event(occurred_us=occurred_us),
            now_us=NOW_US,
            future_tolerance_us=TOLERANCE_US,
            oldest_us=oldest_us,
        )

    assert isinstance(check(oldest_us), ValidEvent)
    too_old = check(oldest_us - 1)
    assert too_old == Invalid(
        2,
        "occurred_time is more than 400 days in the past, outside the retention window",
        "events[2].occurred_time",
    )
