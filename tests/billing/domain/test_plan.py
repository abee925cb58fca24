from decimal import Decimal as D

import pytest

from billing.domain import (
    BucketPrice,
    Charge,
    CostPlusMarkup,
    Graduated,
    Package,
    PerUnit,
    PlanSpec,
    SizeBuckets,
    Tier,
    parse_plan_file,
    parse_plan_yaml,
    plan_from_dict,
    plan_to_dict,
    validate_plan,
)
from common.errors import InvalidArgument

AGENCY_YAML = """
currency: USD
base_fee: "49.00"
charges:
  - key: documents
    meter_key: documents
    display_name: Documents processed
    included_quantity: 100
    maximum_amount: 500
    size_buckets:
      buckets:
        - {bucket: "1-10", unit_price: 0.50}
        - {bucket: "11-100", unit_price: "2.00"}
        - {bucket: "101+", unit_price: 5}
  - key: tokens
    meter_key: provider_cost
    display_name: AI usage
    cost_plus: {markup_percent: 25, fixed_per_request: 0.001}
  - key: calls
    meter_key: calls
    display_name: API calls
    provider_cost_meter_key: call_cost
    graduated:
      tiers:
        - {up_to: 1000, unit_price: 0.01}
        - {up_to: null, unit_price: 0.008, flat_price: 2}
"""


def test_yaml_plan_parses_into_exact_decimals():
    spec = parse_plan_yaml(AGENCY_YAML)
    assert spec.currency == "USD" and spec.base_fee == D("49.00")
    docs, tokens, calls = spec.charges
    assert docs.price == SizeBuckets(
        (BucketPrice("1-10", D("0.50")), BucketPrice("11-100", D("2.00")), BucketPrice("101+", D(5)))
    )
    assert docs.included_quantity == D(100) and docs.maximum_amount == D(500)
    assert tokens.price == CostPlusMarkup(D(25), D("0.001"))
    assert calls.price == Graduated((Tier(D(1000), D("0.01")), Tier(None, D("0.008"), D(2))))
    assert calls.provider_cost_meter_key == "call_cost"


def test_yaml_numbers_never_pass_through_float():
    spec = parse_plan_yaml(
        "currency: USD\ncharges:\n- {key: a, meter_key: m, display_name: A,"
        " per_unit: {unit_price: 0.123456789}}\n"
    )
    assert spec.charges[0].price == PerUnit(D("0.123456789"))
    assert str(spec.charges[0].price.unit_price) == "0.123456789"


def test_plan_round_trips_through_its_dict_form():
    spec = parse_plan_yaml(AGENCY_YAML)
    data = plan_to_dict(spec)
    assert data["charges"][0]["size_buckets"]["buckets"][0] == {"bucket": "1-10", "unit_price": "0.50"}
    assert plan_from_dict(data) == spec


def test_plan_file_reads_key_and_display_name():
    parsed = parse_plan_file("key: docs-plan\ndisplay_name: Documents\n" + AGENCY_YAML)
    assert (parsed.plan_key, parsed.display_name) == ("docs-plan", "Documents")
    assert parsed.spec == parse_plan_yaml(AGENCY_YAML)


def _charge_yaml(body: str) -> str:
    return f"currency: USD\ncharges:\n  - key: a\n    meter_key: m\n    display_name: A\n{body}"


@pytest.mark.parametrize(
    "text,field,message",
    [
        ("currency: XXX\nbase_fee: 1\n", "currency", "unknown currency"),
        ("currency: USD\n", "charges", "base fee or at least one charge"),
        ("currency: USD\nbase_fee: 1.005\n", "base_fee", "at most 2 decimal places"),
        ("currency: USD\nbase_fee: -1\n", "base_fee", "zero or more"),
        ("currency: USD\nbase_fee: '1e3'\n", "base_fee", "decimal number"),
        ("currency: USD\nbase_fee: yes\n", "base_fee", "must be a number"),
        ("currency: USD\nbase_fee: 1\ncolor: red\n", "color", "unknown field"),
        ("currency: USD\nbilling_interval: week\nbase_fee: 1\n", "billing_interval", "calendar_month"),
        (_charge_yaml("    per_unit: {unit_price: -1}\n"), "charges[0].per_unit.unit_price", "zero or more"),
        (
            _charge_yaml("    per_unit: {unit_price: 0.0000000001}\n"),
            "charges[0].per_unit.unit_price",
            "at most 9 decimal places",
        ),
        (_charge_yaml("    included_quantity: 1\n"), "charges[0].price", "exactly one price"),
        (
            _charge_yaml("    per_unit: {unit_price: 1}\n    package: {package_size: 1, package_price: 1}\n"),
            "charges[0].price",
            "got per_unit, package",
        ),
        (_charge_yaml("    per_unit: {price: 1}\n"), "charges[0].per_unit.price", "unknown field"),
        (
            _charge_yaml(
                "    graduated:\n      tiers:\n        - {up_to: 10, unit_price: 1}\n"
                "        - {up_to: 5, unit_price: 1}\n        - {up_to: null, unit_price: 1}\n"
            ),
            "charges[0].graduated.tiers[1].up_to",
            "ascending",
        ),
        (
            _charge_yaml("    volume:\n      tiers:\n        - {up_to: 10, unit_price: 1}\n"),
            "charges[0].volume.tiers[0].up_to",
            "last tier must be open-ended",
        ),
        (
            _charge_yaml(
                "    graduated:\n      tiers:\n        - {up_to: null, unit_price: 1}\n"
                "        - {up_to: null, unit_price: 1}\n"
            ),
            "charges[0].graduated.tiers[0].up_to",
            "only the last tier",
        ),
        (
            _charge_yaml("    graduated:\n      tiers:\n        - {unit_price: 1}\n"),
            "charges[0].graduated.tiers[0].up_to",
            "is required",
        ),
        (_charge_yaml("    graduated: {tiers: []}\n"), "charges[0].graduated.tiers", "at least one tier"),
        (
            _charge_yaml("    package: {package_size: 0, package_price: 1}\n"),
            "charges[0].package.package_size",
            "greater than zero",
        ),
        (
            _charge_yaml(
                "    size_buckets:\n      buckets:\n        - {bucket: a, unit_price: 1}\n"
                "        - {bucket: a, unit_price: 2}\n"
            ),
            "charges[0].size_buckets.buckets[1].bucket",
            "duplicate bucket",
        ),
        (
            _charge_yaml("    per_unit: {unit_price: 1}\n    minimum_amount: 10\n    maximum_amount: 5\n"),
            "charges[0].minimum_amount",
            "above maximum_amount",
        ),
        (
            _charge_yaml("    per_unit: {unit_price: 1}\n    maximum_amount: 5.001\n"),
            "charges[0].maximum_amount",
            "at most 2 decimal places",
        ),
        (
            _charge_yaml("    cost_plus: {markup_percent: 25}\n    included_quantity: 5\n"),
            "charges[0].included_quantity",
            "must be 0 for cost_plus",
        ),
        (
            _charge_yaml("    cost_plus: {markup_percent: 25}\n    provider_cost_meter_key: x\n"),
            "charges[0].provider_cost_meter_key",
            "its own meter",
        ),
        (
            "currency: USD\ncharges:\n  - key: A!\n    meter_key: m\n    display_name: A\n"
            "    per_unit: {unit_price: 1}\n",
            "charges[0].key",
            "64 characters",
        ),
        (
            'currency: USD\ncharges:\n  - key: "a\\n"\n    meter_key: m\n    display_name: A\n'
            "    per_unit: {unit_price: 1}\n",
            "charges[0].key",
            "64 characters",
        ),
        (
            "currency: USD\ncharges:\n  - key: a\n    display_name: A\n    per_unit: {unit_price: 1}\n",
            "charges[0].meter_key",
            "is required",
        ),
        ("currency: USD\ncharges: {a: 1}\n", "charges", "must be a list"),
        ("currency: USD\ncharges:\n  - key: a\n  bad indent: [\n", "yaml", "not valid YAML at line"),
        ("", "yaml", "empty"),
        ("- 1\n- 2\n", "plan", "must be a mapping"),
    ],
)
def test_yaml_errors_name_the_path_at_fault(text, field, message):
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml(text)
    assert err.value.field == field
    assert message in err.value.message


def test_duplicate_charge_keys_are_refused_on_the_second():
    c = Charge("a", "m", "A", PerUnit(D(1)))
    with pytest.raises(InvalidArgument) as err:
        validate_plan(PlanSpec("USD", (c, c)))
    assert err.value.field == "charges[1].key" and "duplicate" in err.value.message


def test_validation_paths_can_carry_a_prefix_for_the_request_field():
    bad = Charge("a", "m", "A", Package(D(-1), D(1)))
    with pytest.raises(InvalidArgument) as err:
        validate_plan(PlanSpec("USD", (bad,)), prefix="version")
    assert err.value.field == "version.charges[0].package.package_size"


def test_jpy_base_fee_must_be_whole_yen():
    with pytest.raises(InvalidArgument) as err:
        validate_plan(PlanSpec("JPY", base_fee=D("100.5")))
    assert err.value.field == "base_fee"
    assert validate_plan(PlanSpec("JPY", base_fee=D(100))).base_fee == 100


@pytest.mark.parametrize(
    "value",
    ["1.0e+100", "1000000000000000000", "123456789012345678901234567890123456789012345678901234567890123.5"],
)
def test_absurdly_large_amounts_are_refused_with_the_field(value):
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml(_charge_yaml(f"    per_unit: {{unit_price: {value}}}\n"))
    assert err.value.field == "charges[0].per_unit.unit_price"


def test_a_charge_without_a_price_model_names_the_price_field():
    with pytest.raises(InvalidArgument) as err:
        validate_plan(PlanSpec("USD", (Charge("a", "m", "A", None),)))  # type: ignore[arg-type]
    assert err.value.field == "charges[0].price"


def test_a_key_written_twice_in_yaml_is_refused_instead_of_keeping_the_last():
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml(_charge_yaml("    per_unit:\n      unit_price: 1\n      unit_price: 2\n"))
    assert err.value.field == "yaml"
    assert "duplicate key 'unit_price'" in err.value.message and "line 8" in err.value.message


def test_plan_file_key_must_be_a_valid_key():
    with pytest.raises(InvalidArgument) as err:
        parse_plan_file("key: Not A Key\n" + AGENCY_YAML)
    assert err.value.field == "key"


@pytest.mark.parametrize(
    "text,message",
    [
        ("a: &x [1, 2]\nb: *x\ncurrency: USD\n", "aliases"),
        ("currency: USD\nx: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 16"),
        ("currency: USD\nbase_fee: " + "9" * 5000 + "\n", "cannot be read"),
        ("currency: USD\n? [a, b]\n: 1\n", "plain text"),
    ],
)
def test_yaml_that_would_expand_recurse_or_not_convert_is_refused(text, message):
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml(text)
    assert err.value.field == "yaml"
    assert message in err.value.message


@pytest.mark.parametrize(
    "charge,field",
    [
        (
            '{key: t, meter_key: "Bad Meter", display_name: T, per_unit: {unit_price: "1"}}',
            "charges[0].meter_key",
        ),
        (
            '{key: t, meter_key: m, display_name: "' + "n" * 257 + '", per_unit: {unit_price: "1"}}',
            "charges[0].display_name",
        ),
        (
            '{key: t, meter_key: m, display_name: "a\\0b", per_unit: {unit_price: "1"}}',
            "charges[0].display_name",
        ),
        (
            '{key: t, meter_key: m, display_name: T, size_buckets: {buckets: [{bucket: "'
            + "b" * 65
            + '", unit_price: "1"}]}}',
            "charges[0].size_buckets.buckets[0].bucket",
        ),
    ],
)
def test_plan_names_and_keys_fit_the_invoice_line_columns(charge, field):
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml(f"currency: USD\ncharges:\n  - {charge}\n")
    assert err.value.field == field


def test_an_error_quotes_a_long_yaml_value_cut_short():
    with pytest.raises(InvalidArgument) as err:
        parse_plan_yaml("currency: USD\nbilling_interval: " + "w" * 500 + "\n")
    assert err.value.field == "billing_interval"
    assert "w" * 41 not in err.value.message and "w" * 40 in err.value.message
