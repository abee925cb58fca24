"""Spend in the request path: the price of a usage event under a customer's rate card, the hold of a
request (its most it can cost), and which spend controls count a request. Pure; no I/O.

Rules, in order:

1. Price of one usage event (billing's spend.proto RateKind), the sum over the rate card's items; an
   item applies only when the event's status is in its statuses and its event_type is the event's:
   COST_PLUS = provider_cost x (1 + markup_percent / 100) + fixed_per_event, where provider_cost is the
   event's exact nine-place quantity (gateway/domain/usage.py); PER_EVENT = unit_price;
   PER_QUANTITY = unit_price x the event's quantity named by the item (0 when the event has none).
   Exact Decimal arithmetic, no rounding here: prices add exactly. The one rounding is where spend
   leaves the process (gateway/spend.py reports a lease's consumption rounded UP to nine places, so
   spend is never under-counted).
2. Hold of a request = the price of a SUCCEEDED event of the route with input tokens = an upper bound
   of the prompt (UTF-8 bytes of its text + MESSAGE_OVERHEAD_TOKENS per message + PROMPT_OVERHEAD_TOKENS:
   a BPE token is at least one byte, so tokens never exceed bytes; the overheads cover role and framing
   tokens), output tokens = max_tokens, else the stated default (GATEWAY_SPEND_DEFAULT_OUTPUT_TOKENS),
   pages = the request's page count, latency_ms = the attempt timeout. Prices only grow with tokens
   (rates are non-negative), so an event whose tokens are within these bounds never costs more than
   the hold. The hold is the same whatever the event's status would be because FAILED events price
   the same or less under cards whose items list only "succeeded"; a card listing "failed" is priced
   on the larger of the two (both statuses are evaluated).
3. Which controls count a request: every CUSTOMER control; an API_KEY control when it names the key's
   id; a TAG control when the request's effective tags carry its key with exactly its value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.catalog import Route
from gateway.domain.usage import EVENT_TYPE, FAILED, SUCCEEDED, provider_cost

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Role, name and framing tokens a chat template adds per message and per prompt (OpenAI's is 3-4 per
# message and 3 per reply); stated generously, since the bound must hold for any tokenizer.
MESSAGE_OVERHEAD_TOKENS = 16
PROMPT_OVERHEAD_TOKENS = 16

COST_PLUS = "cost_plus"
PER_EVENT = "per_event"
PER_QUANTITY = "per_quantity"

CUSTOMER = "customer"
API_KEY = "api_key"
TAG = "tag"

REFUSE = "refuse"
DEGRADE = "degrade"


@dataclass(frozen=True, slots=True)
class RateItem:
    kind: str  # COST_PLUS | PER_EVENT | PER_QUANTITY
    statuses: frozenset[str]
    event_type: str = EVENT_TYPE
    markup_percent: Decimal = ZERO
    fixed_per_event: Decimal = ZERO
    unit_price: Decimal = ZERO
    quantity: str = ""


@dataclass(frozen=True, slots=True)
class Control:
    id: str
    scope: str  # CUSTOMER | API_KEY | TAG
    api_key_id: str = ""
    tag_key: str = ""
    tag_value: str = ""
    hard_cap: Decimal | None = None
    on_cap: str = REFUSE
    degrade_model: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    builder_id: str
    customer_id: str
    currency_code: str
    controls: tuple[Control, ...]
    rate_card: tuple[RateItem, ...]
    period_end_time: datetime | None
    lease_seconds: int

    @property
    def free(self) -> bool:
        """Nothing to hold: no rate card (requests cost the customer nothing) or no control."""
        return not self.rate_card or not self.controls


# ---- 1. price of an event ----


def _quantity(quantities: Mapping[str, str], name: str) -> Decimal:
    v = quantities.get(name)
    return Decimal(v) if v else ZERO


def item_price(item: RateItem, event_type: str, status: str, quantities: Mapping[str, str]) -> Decimal:
    if event_type != item.event_type or status not in item.statuses:
        return ZERO
    if item.kind == COST_PLUS:
        cost = _quantity(quantities, "provider_cost")
        return cost * (1 + item.markup_percent / HUNDRED) + item.fixed_per_event
    if item.kind == PER_EVENT:
        return item.unit_price
    if item.kind == PER_QUANTITY:
        return item.unit_price * _quantity(quantities, item.quantity)
    return ZERO


def event_price(
    card: Iterable[RateItem], event_type: str, status: str, quantities: Mapping[str, str]
) -> Decimal:
    return sum((item_price(i, event_type, status, quantities) for i in card), ZERO)


# ---- 2. hold of a request ----


def prompt_bytes(messages: list[dict[str, Any]]) -> int:
    """UTF-8 bytes of the prompt's text (the same text usage.py counts characters of)."""
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content.encode("utf-8", "surrogatepass"))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    n += len(part["text"].encode("utf-8", "surrogatepass"))
    return n


def input_token_bound(messages: list[dict[str, Any]]) -> int:
    return prompt_bytes(messages) + MESSAGE_OVERHEAD_TOKENS * len(messages) + PROMPT_OVERHEAD_TOKENS


def bound_quantities(
    route: Route, input_tokens: int, output_tokens: int, pages: int, latency_ms: int
) -> dict[str, str]:
    q = {
        "input_tokens": str(input_tokens),
        "output_tokens": str(output_tokens),
        "provider_cost": str(provider_cost(route, input_tokens, output_tokens)),
        "latency_ms": str(latency_ms),
    }
    if pages > 0:
        q["pages"] = str(pages)
    return q


def hold(
    card: Iterable[RateItem],
    route: Route,
    input_tokens: int,
    output_tokens: int,
    pages: int = 0,
    latency_ms: int = 0,
) -> Decimal:
    """The most one attempt on `route` can cost when its tokens are within the bounds given."""
    card = tuple(card)
    q = bound_quantities(route, input_tokens, output_tokens, pages, latency_ms)
    return max(event_price(card, EVENT_TYPE, SUCCEEDED, q), event_price(card, EVENT_TYPE, FAILED, q))


# ---- 3. which controls count a request ----


def applicable(controls: Iterable[Control], api_key_id: str, tags: Mapping[str, str]) -> list[Control]:
    out = []
    for c in controls:
        if (
            c.scope == CUSTOMER
            or (c.scope == API_KEY and c.api_key_id == api_key_id)
            or (c.scope == TAG and c.tag_key in tags and tags[c.tag_key] == c.tag_value)
        ):
            out.append(c)
    return out


def event_price_many(card: Iterable[RateItem], events: Iterable[Any]) -> Decimal:
    """The price of a request's usage events (UsageRecord: type, status, quantities)."""
    card = tuple(card)
    return sum((event_price(card, e.type, e.status, e.quantities) for e in events), ZERO)
