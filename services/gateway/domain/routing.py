"""Ordering a request's candidate offerings: strategy, fallback models, provider preferences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.domain.catalog import Route

CHEAPEST = "cheapest"
LATENCY = "latency"
FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


NO_PREFERENCES = ProviderPreferences()


def order_routes(
    routes: Sequence[Route],
    strategy: str,
    prefs: ProviderPreferences,
    estimated_input_tokens: int,
    estimated_output_tokens: int,
    latency_of: Callable[[Route], float],
) -> list[Route]:
    """One model's routes in the order to try them.

    only/ignore filter; the strategy sorts (ties: higher weight, then catalog order); then the
    providers named in `order` move to the front in that order, each keeping the strategy's order
    among its own offerings.
    """
    allowed = [
        r for r in routes if (not prefs.only or r.provider in prefs.only) and r.provider not in prefs.ignore
    ]
    if strategy == CHEAPEST:
        allowed.sort(
            key=lambda r: (
                r.input_price_per_mtok * estimated_input_tokens
                + r.output_price_per_mtok * estimated_output_tokens,
                -r.weight,
                r.position,
            )
        )
    elif strategy == LATENCY:
        # Offerings never observed sort first (latency 0) so every offering gets measured.
        allowed.sort(key=lambda r: (latency_of(r), -r.weight, r.position))
    else:
        allowed.sort(key=lambda r: r.position)
    if prefs.order:
        rank = {name: i for i, name in enumerate(prefs.order)}
        last = len(rank)
        allowed.sort(key=lambda r: rank.get(r.provider, last))  # stable: keeps strategy order within
    return allowed


def plan(
    model_routes: Sequence[Sequence[Route]],
    strategy: str,
    prefs: ProviderPreferences,
    estimated_input_tokens: int,
    estimated_output_tokens: int,
    latency_of: Callable[[Route], float],
) -> list[Route]:
    """All candidates: the primary model's offerings, then each fallback model's, in order."""
    out: list[Route] = []
    for routes in model_routes:
        out.extend(
            order_routes(routes, strategy, prefs, estimated_input_tokens, estimated_output_tokens, latency_of)
        )
    return out
