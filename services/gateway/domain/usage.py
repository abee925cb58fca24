"""Usage events: one per upstream attempt, with exact provider cost.

Rounding rule (the one place): provider_cost = (input_tokens x input_price_per_mtok + output_tokens x
output_price_per_mtok) / 1,000,000, rounded half-to-even to 9 decimal places, once per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from common.money import MONEY_CONTEXT, NANO, format_decimal
from gateway.domain.catalog import MILLION, Route
from gateway.domain.chat import BusinessUnits

EVENT_TYPE = "ai.request"
SUCCEEDED = "succeeded"
FAILED = "failed"
# Every attempt of a test key, whatever its outcome: a failed test attempt must not become a FAILED
# event that a meter listing FAILED would count. The outcome itself goes in the ATTEMPT_STATUS tag.
TEST = "test"
ATTEMPT_STATUS_TAG = "attempt_status"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    id: str
    occurred_time: datetime
    builder_id: str
    app_id: str
    customer_id: str
    status: str
    run_id: str
    tags: dict[str, str]
    quantities: dict[str, str]
    type: str = EVENT_TYPE


# A token count above this is not believed (it also keeps quantities far inside metering's bound).
MAX_REPORTED_TOKENS = 10**12


def estimate_tokens(chars: int) -> int:
    """About four characters a token, rounded up; used when a provider omits usage."""
    return (chars + 3) // 4


def reported_usage(raw: object, prompt_chars: int, output_chars: int) -> tuple[int, int] | None:
    """The provider's (input, output) tokens, or None when it reported none worth billing by.

    Treated as reporting none (the caller then estimates, and marks the event estimated): no usage
    object; counts that are not whole numbers from 0 to MAX_REPORTED_TOKENS; and zero tokens for a
    side that was not empty (a non-empty prompt or answer cannot have cost 0 tokens, so a provider
    saying so must not turn a paid answer into a $0 one)."""
    if not isinstance(raw, dict):
        return None
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        v = raw.get(name)
        if v is None:
            v = 0
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_REPORTED_TOKENS:
            return None
        counts.append(v)
    if (counts[0] == 0 and prompt_chars > 0) or (counts[1] == 0 and output_chars > 0):
        return None
    return counts[0], counts[1]


def provider_cost(route: Route, input_tokens: int, output_tokens: int) -> Decimal:
    raw = MONEY_CONTEXT.add(
        MONEY_CONTEXT.multiply(Decimal(input_tokens), route.input_price_per_mtok),
        MONEY_CONTEXT.multiply(Decimal(output_tokens), route.output_price_per_mtok),
    )
    return MONEY_CONTEXT.divide(raw, MILLION).quantize(NANO, rounding=ROUND_HALF_EVEN, context=MONEY_CONTEXT)


def event_id(request_id: str, attempt: int) -> str:
    return f"{request_id}:{attempt}"


def build_event(
    *,
    request_id: str,
    attempt: int,
    occurred_time: datetime,
    builder_id: str,
    app_id: str,
    customer_id: str,
    route: Route,
    succeeded: bool,
    input_tokens: int,
    output_tokens: int,
    estimated: bool,
    latency_ms: int,
    tags: dict[str, str],
    units: BusinessUnits,
    error: str = "",
    test: bool = False,
) -> UsageRecord:
    """The event of one attempt. Tags: the merged caller tags plus the route and business units.

    A test key's attempt (test=True) has status TEST and its outcome in the attempt_status tag."""
    t = dict(tags)
    t["model"] = route.model
    t["provider"] = route.provider
    t["offering"] = route.offering_id
    t["upstream_model"] = route.upstream_model
    t["attempt"] = str(attempt)
    if estimated:
        t["tokens_estimated"] = "true"
    if error:
        t["error"] = error[:256]
    if units.document_id:
        t["document_id"] = units.document_id
    if units.ticket_id:
        t["ticket_id"] = units.ticket_id
    if units.outcome:
        t["outcome"] = units.outcome
    q = {
        "input_tokens": str(input_tokens),
        "output_tokens": str(output_tokens),
        "provider_cost": format_decimal(provider_cost(route, input_tokens, output_tokens)),
        "latency_ms": str(latency_ms),
    }
    if units.page_count > 0:
        q["pages"] = str(units.page_count)
    outcome = SUCCEEDED if succeeded else FAILED
    if test:
        t[ATTEMPT_STATUS_TAG] = outcome
    return UsageRecord(
        id=event_id(request_id, attempt),
        occurred_time=occurred_time,
        builder_id=builder_id,
        app_id=app_id,
        customer_id=customer_id,
        status=TEST if test else outcome,
        run_id=units.run_id,
        tags=t,
        quantities=q,
    )
