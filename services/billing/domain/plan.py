"""Plan specs, their validation, and pricing as code (YAML).

A PlanSpec is the content of one plan version: currency, billing interval (calendar month in UTC by
default), optional base fee, and charges. `validate_plan` checks everything a version needs to be
priced and raises InvalidArgument naming the field with a path such as
"charges[1].price.tiers[0].up_to" (the same path in YAML, in `plan_from_dict` and for a spec built
in code).

Amounts and quantities are Decimal. In YAML they may be written as strings ("0.50") or numbers
(0.50); numbers are read from the YAML text itself, never through a float, so 0.1 is exactly 0.1.
Prices, fees and quantities have at most nine decimal places; the base fee and the minimum and
maximum charges are whole minor units of the currency (cents for USD).

YAML shape (also the dict shape of `plan_to_dict` / `plan_from_dict`, and the same field names
and paths as tollgate.billing.v1.PlanVersion / Charge: the price is one of the keys per_unit,
graduated, volume, package, size_buckets, cost_plus, like the proto's oneof):

    key: document-processing             # optional (parse_plan_file only): the plan's key
    display_name: Document processing    # optional (parse_plan_file only)
    currency: USD
    billing_interval: calendar_month     # optional, the default
    base_fee: "49.00"                    # optional
    charges:
      - key: documents
        meter_key: documents
        display_name: Documents processed
        included_quantity: 100           # optional, default 0
        minimum_amount: "10.00"          # optional
        maximum_amount: "500.00"         # optional
        provider_cost_meter_key: document_cost   # optional
        size_buckets:
          buckets:
            - {bucket: "1-10", unit_price: "0.50"}
            - {bucket: "11-100", unit_price: "2.00"}
            - {bucket: "101+", unit_price: "5.00"}
    # per_unit: {unit_price: "0.02"}
    # graduated / volume: {tiers: [{up_to: 1000, unit_price: "0.01", flat_price: 0},
    #                              {up_to: null, unit_price: "0.008"}]}
    # package: {package_size: 1000, package_price: "5.00"}
    # cost_plus: {markup_percent: 25, fixed_per_request: "0.001"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from common.errors import InvalidArgument

from .money import ZERO, has_at_most_places, minor_units
from .period import BillingInterval
from .pricing import (
    BucketPrice,
    Charge,
    CostPlusMarkup,
    Graduated,
    Package,
    PerUnit,
    PriceModel,
    PriceModelKind,
    SizeBuckets,
    Tier,
    Volume,
)
from .text import CONTROL, quote

MAX_PLACES = 9
# Every amount and quantity must fit NUMERIC(38, 9) with room for products and sums: 10^18 units.
MAX_VALUE = Decimal(10) ** 18
KEY_PATTERN = re.compile(r"^[a-z0-9_.-]{1,64}$")
MAX_CHARGES = 100
MAX_TIERS = 50
MAX_BUCKETS = 50
# Names are printed on invoice lines (VARCHAR(256)); bucket keys are metering's (at most 64).
MAX_NAME_CHARS = 256
MAX_BUCKET_CHARS = 64
# A plan is a few dozen lines; a YAML document nested deeper than this is not a plan.
MAX_YAML_DEPTH = 16


@dataclass(frozen=True)
class PlanSpec:
    """The priced content of one plan version."""

    currency: str
    charges: tuple[Charge, ...] = ()
    base_fee: Decimal | None = None
    billing_interval: BillingInterval = BillingInterval.CALENDAR_MONTH
    base_fee_display_name: str = "Base fee"

    def charge(self, key: str) -> Charge:
        for charge in self.charges:
            if charge.key == key:
                return charge
        raise KeyError(key)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _number(value: Decimal, path: str, *, places: int = MAX_PLACES, positive: bool = False) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidArgument(f"must be a decimal number, got {quote(value)}", field=path)
    if value >= MAX_VALUE:
        raise InvalidArgument(f"must be less than 10^18, got {value}", field=path)
    if value < 0 or (positive and value == 0):
        raise InvalidArgument(
            f"must be {'greater than zero' if positive else 'zero or more'}, got {value}", field=path
        )
    if not has_at_most_places(value, places):
        raise InvalidArgument(f"must have at most {places} decimal places, got {value}", field=path)


def _validate_tiers(tiers: tuple[Tier, ...], path: str) -> None:
    if not tiers:
        raise InvalidArgument("needs at least one tier", field=path)
    if len(tiers) > MAX_TIERS:
        raise InvalidArgument(f"has more than {MAX_TIERS} tiers", field=path)
    previous = ZERO
    for i, tier in enumerate(tiers):
        tpath = f"{path}[{i}]"
        last = i == len(tiers) - 1
        if tier.up_to is None:
            if not last:
                raise InvalidArgument(
                    "only the last tier may be open-ended (up_to empty)", field=f"{tpath}.up_to"
                )
        else:
            if last:
                raise InvalidArgument(
                    "the last tier must be open-ended (up_to empty)", field=f"{tpath}.up_to"
                )
            _number(tier.up_to, f"{tpath}.up_to", positive=True)
            if tier.up_to <= previous:
                raise InvalidArgument(
                    f"tiers must be in ascending order: {tier.up_to} is not above {previous}",
                    field=f"{tpath}.up_to",
                )
            previous = tier.up_to
        _number(tier.unit_price, f"{tpath}.unit_price")
        _number(tier.flat_price, f"{tpath}.flat_price")


def _validate_price(model: PriceModel, path: str) -> None:
    if isinstance(model, PerUnit):
        _number(model.unit_price, f"{path}.unit_price")
    elif isinstance(model, Graduated | Volume):
        _validate_tiers(model.tiers, f"{path}.tiers")
    elif isinstance(model, Package):
        _number(model.package_size, f"{path}.package_size", positive=True)
        _number(model.package_price, f"{path}.package_price")
    elif isinstance(model, SizeBuckets):
        if not model.buckets:
            raise InvalidArgument("needs at least one bucket", field=f"{path}.buckets")
        if len(model.buckets) > MAX_BUCKETS:
            raise InvalidArgument(f"has more than {MAX_BUCKETS} buckets", field=f"{path}.buckets")
        seen: set[str] = set()
        for i, bucket in enumerate(model.buckets):
            bpath = f"{path}.buckets[{i}]"
            if not bucket.bucket or not isinstance(bucket.bucket, str):
                raise InvalidArgument("is required", field=f"{bpath}.bucket")
            _name(bucket.bucket, f"{bpath}.bucket", MAX_BUCKET_CHARS)
            if bucket.bucket in seen:
                raise InvalidArgument(f"duplicate bucket {quote(bucket.bucket)}", field=f"{bpath}.bucket")
            seen.add(bucket.bucket)
            _number(bucket.unit_price, f"{bpath}.unit_price")
    elif isinstance(model, CostPlusMarkup):
        _number(model.markup_percent, f"{path}.markup_percent")
        _number(model.fixed_per_request, f"{path}.fixed_per_request")
    else:
        raise InvalidArgument("is required: one of " + ", ".join(k.value for k in PriceModelKind), field=path)


def validate_charge(charge: Charge, currency: str, path: str) -> None:
    """Validate one charge; `path` is its field path, e.g. "charges[1]"."""
    if not isinstance(charge.key, str) or not KEY_PATTERN.fullmatch(charge.key):
        raise InvalidArgument(
            "must be 1 to 64 characters of lower-case letters, digits, '_', '-' or '.'; "
            f"got {quote(charge.key)}",
            field=f"{path}.key",
        )
    if not isinstance(charge.meter_key, str) or not charge.meter_key.strip():
        raise InvalidArgument("is required", field=f"{path}.meter_key")
    if not KEY_PATTERN.fullmatch(charge.meter_key):
        raise InvalidArgument(
            f"must be a meter key: 1 to 64 characters of [a-z0-9_.-]; got {quote(charge.meter_key)}",
            field=f"{path}.meter_key",
        )
    if not isinstance(charge.display_name, str) or not charge.display_name.strip():
        raise InvalidArgument("is required", field=f"{path}.display_name")
    _name(charge.display_name, f"{path}.display_name", MAX_NAME_CHARS)
    kind = getattr(charge.price, "kind", None)
    _validate_price(
        charge.price, f"{path}.{kind.value}" if isinstance(kind, PriceModelKind) else f"{path}.price"
    )
    _number(charge.included_quantity, f"{path}.included_quantity")
    places = minor_units(currency)
    if charge.minimum_amount is not None:
        _number(charge.minimum_amount, f"{path}.minimum_amount", places=places)
    if charge.maximum_amount is not None:
        _number(charge.maximum_amount, f"{path}.maximum_amount", places=places)
    if (
        charge.minimum_amount is not None
        and charge.maximum_amount is not None
        and charge.minimum_amount > charge.maximum_amount
    ):
        raise InvalidArgument(
            f"minimum_amount {charge.minimum_amount} is above maximum_amount {charge.maximum_amount}",
            field=f"{path}.minimum_amount",
        )
    if isinstance(charge.price, CostPlusMarkup):
        if charge.included_quantity != 0:
            raise InvalidArgument(
                "must be 0 for cost_plus_markup (pass-through has no free allowance)",
                field=f"{path}.included_quantity",
            )
        if charge.provider_cost_meter_key:
            raise InvalidArgument(
                "must be empty for cost_plus_markup: its own meter is the provider cost",
                field=f"{path}.provider_cost_meter_key",
            )
    elif charge.provider_cost_meter_key is not None and not KEY_PATTERN.fullmatch(
        charge.provider_cost_meter_key
    ):
        raise InvalidArgument("must be a meter key or unset", field=f"{path}.provider_cost_meter_key")


def _name(value: str, path: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"must be at most {limit} characters", field=path)
    if CONTROL.search(value):
        raise InvalidArgument("must not contain control characters (NUL, newline, ...)", field=path)


def validate_plan(spec: PlanSpec, *, prefix: str = "") -> PlanSpec:
    """Check `spec` completely; return it unchanged or raise InvalidArgument with the field path.

    `prefix` is prepended to every path ("plan" gives "plan.charges[0].key").
    """
    minor_units(spec.currency, field=_join(prefix, "currency"))
    if not isinstance(spec.billing_interval, BillingInterval):
        raise InvalidArgument(
            "must be one of: " + ", ".join(i.value for i in BillingInterval),
            field=_join(prefix, "billing_interval"),
        )
    if not isinstance(spec.base_fee_display_name, str) or not spec.base_fee_display_name.strip():
        raise InvalidArgument("is required", field=_join(prefix, "base_fee_display_name"))
    _name(spec.base_fee_display_name, _join(prefix, "base_fee_display_name"), MAX_NAME_CHARS)
    if spec.base_fee is not None:
        _number(spec.base_fee, _join(prefix, "base_fee"), places=minor_units(spec.currency))
    if not spec.charges and spec.base_fee is None:
        raise InvalidArgument(
            "a plan needs a base fee or at least one charge", field=_join(prefix, "charges")
        )
    if len(spec.charges) > MAX_CHARGES:
        raise InvalidArgument(f"has more than {MAX_CHARGES} charges", field=_join(prefix, "charges"))
    seen: set[str] = set()
    for i, charge in enumerate(spec.charges):
        path = _join(prefix, f"charges[{i}]")
        validate_charge(charge, spec.currency, path)
        if charge.key in seen:
            raise InvalidArgument(f"duplicate charge key {quote(charge.key)}", field=f"{path}.key")
        seen.add(charge.key)
    return spec


# --- dict / YAML ------------------------------------------------------------------------------


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML floats straight from their text as Decimal: never a float.

    It also refuses aliases (`*name`): a plan never needs them, and a few lines of nested aliases
    (the "billion laughs") expand into billions of nodes for whoever walks the result. Nesting is
    bounded too: PyYAML composes recursively, so a deep document would exhaust the stack.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a plan", mark)
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, f"the plan is nested deeper than {MAX_YAML_DEPTH} levels", mark
            )
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{quote(text)} is not a number", node.start_mark
        ) from None
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{quote(text)} is not a finite number", node.start_mark
        )
    return value


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # PyYAML keeps the last of two equal keys; in a price list that silently drops a price.
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be plain text", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {quote(key)}", key_node.start_mark
            )
    return loader.construct_mapping(node)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_DecimalLoader.add_constructor("tag:yaml.org,2002:map", _construct_unique_mapping)


def _dec(raw: Any, path: str, *, optional: bool = False) -> Decimal | None:
    if raw is None:
        if optional:
            return None
        raise InvalidArgument("is required", field=path)
    if isinstance(raw, bool):
        raise InvalidArgument(f"must be a number, got {quote(raw)}", field=path)
    if isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        # Only reachable from dicts built in code; str() gives the shortest round-trip text.
        value = Decimal(str(raw))
    elif isinstance(raw, str):
        text = raw.strip()
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
            raise InvalidArgument(f"must be a decimal number, got {quote(raw)}", field=path)
        value = Decimal(text)
    else:
        raise InvalidArgument(f"must be a number, got {type(raw).__name__}", field=path)
    if not value.is_finite():
        raise InvalidArgument(f"must be a finite number, got {quote(raw)}", field=path)
    return value


def _req_dec(raw: Any, path: str) -> Decimal:
    value = _dec(raw, path)
    assert value is not None
    return value


def _str(raw: Any, path: str, *, optional: bool = False) -> str | None:
    if raw is None:
        if optional:
            return None
        raise InvalidArgument("is required", field=path)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidArgument(f"must be text, got {type(raw).__name__}", field=path)
    return str(raw)


def _map(raw: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(f"must be a mapping, got {type(raw).__name__}", field=path or "plan")
    for key in raw:
        if key not in allowed:
            raise InvalidArgument(
                f"unknown field {quote(key)}; expected one of: {', '.join(sorted(allowed))}",
                field=_join(path, str(key)[:64]),
            )
    return raw


def _list(raw: Any, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidArgument(f"must be a list, got {type(raw).__name__}", field=path)
    return raw


def _tiers(raw: Any, path: str) -> tuple[Tier, ...]:
    tiers = []
    for i, item in enumerate(_list(raw, path)):
        tpath = f"{path}[{i}]"
        m = _map(item, tpath, {"up_to", "unit_price", "flat_price"})
        if "up_to" not in m:
            raise InvalidArgument("is required (null for the open-ended last tier)", field=f"{tpath}.up_to")
        tiers.append(
            Tier(
                up_to=_dec(m.get("up_to"), f"{tpath}.up_to", optional=True),
                unit_price=_dec(m.get("unit_price", 0), f"{tpath}.unit_price") or ZERO,
                flat_price=_dec(m.get("flat_price", 0), f"{tpath}.flat_price") or ZERO,
            )
        )
    return tuple(tiers)


def _price_from_charge(c: Mapping[str, Any], path: str) -> PriceModel:
    present = [k for k in PriceModelKind if k.value in c]
    kinds = ", ".join(k.value for k in PriceModelKind)
    if len(present) != 1:
        got = ", ".join(k.value for k in present) or "none"
        raise InvalidArgument(f"needs exactly one price: one of {kinds}; got {got}", field=f"{path}.price")
    kind = present[0]
    raw = c[kind.value]
    ppath = f"{path}.{kind.value}"
    if kind is PriceModelKind.PER_UNIT:
        m = _map(raw, ppath, {"unit_price"})
        return PerUnit(unit_price=_req_dec(m.get("unit_price"), f"{ppath}.unit_price"))
    if kind is PriceModelKind.GRADUATED:
        m = _map(raw, ppath, {"tiers"})
        return Graduated(tiers=_tiers(m.get("tiers"), f"{ppath}.tiers"))
    if kind is PriceModelKind.VOLUME:
        m = _map(raw, ppath, {"tiers"})
        return Volume(tiers=_tiers(m.get("tiers"), f"{ppath}.tiers"))
    if kind is PriceModelKind.PACKAGE:
        m = _map(raw, ppath, {"package_size", "package_price"})
        return Package(
            package_size=_req_dec(m.get("package_size"), f"{ppath}.package_size"),
            package_price=_req_dec(m.get("package_price"), f"{ppath}.package_price"),
        )
    if kind is PriceModelKind.SIZE_BUCKETS:
        m = _map(raw, ppath, {"buckets"})
        buckets = []
        for i, item in enumerate(_list(m.get("buckets"), f"{ppath}.buckets")):
            bpath = f"{ppath}.buckets[{i}]"
            b = _map(item, bpath, {"bucket", "unit_price"})
            buckets.append(
                BucketPrice(
                    bucket=_str(b.get("bucket"), f"{bpath}.bucket") or "",
                    unit_price=_req_dec(b.get("unit_price"), f"{bpath}.unit_price"),
                )
            )
        return SizeBuckets(buckets=tuple(buckets))
    m = _map(raw if raw is not None else {}, ppath, {"markup_percent", "fixed_per_request"})
    return CostPlusMarkup(
        markup_percent=_req_dec(m.get("markup_percent", 0), f"{ppath}.markup_percent"),
        fixed_per_request=_req_dec(m.get("fixed_per_request", 0), f"{ppath}.fixed_per_request"),
    )


_CHARGE_FIELDS = {
    "key",
    "meter_key",
    "display_name",
    "included_quantity",
    "minimum_amount",
    "maximum_amount",
    "provider_cost_meter_key",
    *(k.value for k in PriceModelKind),
}
_PLAN_FIELDS = {"currency", "billing_interval", "base_fee", "base_fee_display_name", "charges"}
_FILE_FIELDS = {*_PLAN_FIELDS, "key", "display_name"}


@dataclass(frozen=True)
class PlanFile:
    """A plan written as YAML: optional plan key and display name, and the priced spec."""

    plan_key: str | None
    display_name: str | None
    spec: PlanSpec


def plan_from_dict(raw: Any) -> PlanSpec:
    """Build and validate a PlanSpec from plain data (the YAML / JSON shape in the module docstring)."""
    m = _map(raw, "", _PLAN_FIELDS)
    currency = _str(m.get("currency"), "currency") or ""
    interval_raw = m.get("billing_interval", BillingInterval.CALENDAR_MONTH.value)
    try:
        interval = BillingInterval(interval_raw)
    except ValueError:
        raise InvalidArgument(
            "must be one of: " + ", ".join(i.value for i in BillingInterval) + f"; got {quote(interval_raw)}",
            field="billing_interval",
        ) from None
    charges = []
    for i, item in enumerate(_list(m.get("charges"), "charges")):
        path = f"charges[{i}]"
        c = _map(item, path, _CHARGE_FIELDS)
        charges.append(
            Charge(
                key=_str(c.get("key"), f"{path}.key") or "",
                meter_key=_str(c.get("meter_key"), f"{path}.meter_key") or "",
                display_name=_str(c.get("display_name"), f"{path}.display_name") or "",
                price=_price_from_charge(c, path),
                included_quantity=_req_dec(c.get("included_quantity", 0), f"{path}.included_quantity"),
                minimum_amount=_dec(c.get("minimum_amount"), f"{path}.minimum_amount", optional=True),
                maximum_amount=_dec(c.get("maximum_amount"), f"{path}.maximum_amount", optional=True),
                provider_cost_meter_key=_str(
                    c.get("provider_cost_meter_key"), f"{path}.provider_cost_meter_key", optional=True
                ),
            )
        )
    spec = PlanSpec(
        currency=currency,
        charges=tuple(charges),
        base_fee=_dec(m.get("base_fee"), "base_fee", optional=True),
        billing_interval=interval,
        base_fee_display_name=_str(m.get("base_fee_display_name", "Base fee"), "base_fee_display_name")
        or "Base fee",
    )
    return validate_plan(spec)


def _load_yaml(text: str) -> Any:
    try:
        raw = yaml.load(text, Loader=_DecimalLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidArgument(f"not valid YAML{where}: {problem[:200]}", field="yaml") from None
    except (ValueError, TypeError, RecursionError):
        # e.g. an integer of more digits than Python converts, or a key YAML cannot hash.
        raise InvalidArgument("not valid YAML for a plan: a value cannot be read", field="yaml") from None
    if raw is None:
        raise InvalidArgument("the plan is empty", field="yaml")
    return raw


def parse_plan_yaml(text: str) -> PlanSpec:
    """Parse and validate a plan written as YAML; InvalidArgument names the YAML path at fault.

    Malformed YAML is reported with its line and column (field "yaml"). Top-level `key` and
    `display_name` are not allowed here (use parse_plan_file).
    """
    return plan_from_dict(_load_yaml(text))


def parse_plan_file(text: str) -> PlanFile:
    """Like parse_plan_yaml, but also reads the optional top-level `key` and `display_name`."""
    raw = _load_yaml(text)
    m = _map(raw, "", _FILE_FIELDS)
    key = _str(m.get("key"), "key", optional=True)
    if key is not None and not KEY_PATTERN.fullmatch(key):
        raise InvalidArgument(f"must be 1 to 64 characters of [a-z0-9_.-]; got {quote(key)}", field="key")
    name = _str(m.get("display_name"), "display_name", optional=True)
    spec = plan_from_dict({k: v for k, v in m.items() if k not in ("key", "display_name")})
    return PlanFile(plan_key=key, display_name=name, spec=spec)


def _s(value: Decimal) -> str:
    return format(value, "f")


def _price_to_dict(model: PriceModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(model, PerUnit):
        out["unit_price"] = _s(model.unit_price)
    elif isinstance(model, Graduated | Volume):
        out["tiers"] = [
            {
                "up_to": None if t.up_to is None else _s(t.up_to),
                "unit_price": _s(t.unit_price),
                "flat_price": _s(t.flat_price),
            }
            for t in model.tiers
        ]
    elif isinstance(model, Package):
        out["package_size"] = _s(model.package_size)
        out["package_price"] = _s(model.package_price)
    elif isinstance(model, SizeBuckets):
        out["buckets"] = [{"bucket": b.bucket, "unit_price": _s(b.unit_price)} for b in model.buckets]
    else:
        out["markup_percent"] = _s(model.markup_percent)
        out["fixed_per_request"] = _s(model.fixed_per_request)
    return out


def plan_to_dict(spec: PlanSpec) -> dict[str, Any]:
    """Plain, JSON-safe data (decimals as strings) that `plan_from_dict` turns back into `spec`."""
    charges = []
    for c in spec.charges:
        item: dict[str, Any] = {
            "key": c.key,
            "meter_key": c.meter_key,
            "display_name": c.display_name,
            c.price.kind.value: _price_to_dict(c.price),
            "included_quantity": _s(c.included_quantity),
        }
        if c.minimum_amount is not None:
            item["minimum_amount"] = _s(c.minimum_amount)
        if c.maximum_amount is not None:
            item["maximum_amount"] = _s(c.maximum_amount)
        if c.provider_cost_meter_key is not None:
            item["provider_cost_meter_key"] = c.provider_cost_meter_key
        charges.append(item)
    out: dict[str, Any] = {
        "currency": spec.currency,
        "billing_interval": spec.billing_interval.value,
        "base_fee_display_name": spec.base_fee_display_name,
        "charges": charges,
    }
    if spec.base_fee is not None:
        out["base_fee"] = _s(spec.base_fee)
    return out
