"""One request's spend hold (README "Spend controls"): placed before any provider is called, topped up
to the next route's price on failover, settled to the price of the request's usage events when it
ends, or released when it recorded none. A test key, or a customer with no rate card or no control
that counts the request, holds nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.domain import routing
from gateway.domain import spend as rules
from gateway.domain.catalog import Route
from gateway.domain.chat import ChatInput
from gateway.domain.health import RouteHealth
from gateway.domain.keys import ApiKey
from gateway.domain.usage import estimate_tokens
from gateway.service.failures import SpendCapReached, SpendCheckUnavailable
from gateway.service.results import _Attempts
from gateway.spend import Hold

if TYPE_CHECKING:
    from gateway.service.chat import ChatService


class Spending:
    __slots__ = ("_svc", "att", "hold", "in_bound", "latency_ms", "out_bound", "pages", "policy")

    def __init__(self, svc: ChatService) -> None:
        self._svc = svc
        self.hold: Hold | None = None
        self.policy: rules.Policy | None = None
        self.att: _Attempts | None = None
        self.in_bound = self.out_bound = self.pages = self.latency_ms = 0

    def route_hold(self, route: Route) -> Decimal:
        assert self.policy is not None
        return rules.hold(
            self.policy.rate_card, route, self.in_bound, self.out_bound, self.pages, self.latency_ms
        )

    @classmethod
    async def begin(
        cls, svc: ChatService, key: ApiKey, chat: ChatInput, tags: dict[str, str], candidates: list[Route]
    ) -> tuple[Spending, list[Route]]:
        sp = cls(svc)
        guard = svc.spend
        if not guard.enabled or key.test:
            return sp, candidates
        policy = await guard.policy(key.builder_id, key.customer_id)
        if policy.free or not rules.applicable(policy.controls, key.id, tags):
            return sp, candidates
        sp.policy = policy
        sp.in_bound = rules.input_token_bound(chat.messages)
        sp.out_bound = chat.params.get("max_tokens") or svc.s.spend_default_output_tokens
        sp.pages = chat.units.page_count
        sp.latency_ms = int(svc.s.attempt_timeout_seconds * 1000)
        try:
            sp.hold = await guard.place(policy, key.id, tags, sp.route_hold(candidates[0]))
        except SpendCapReached as refused:
            degraded = sp._degrade_routes(refused, chat)
            if not degraded:
                raise
            try:
                sp.hold = await guard.place(policy, key.id, tags, sp.route_hold(degraded[0]))
            except SpendCapReached:
                raise refused from None
            metrics.spend_hold("degraded")
            candidates = degraded
        return sp, candidates

    def _degrade_routes(self, refused: SpendCapReached, chat: ChatInput) -> list[Route]:
        """DEGRADE: the degrade model's routes, when it is in the catalog and the preferences allow one."""
        name = refused.degrade_model
        if refused.on_cap != rules.DEGRADE or not name:
            return []
        routes = self._svc.catalog.routes.get(name)
        if not routes:
            return []
        est_in = estimate_tokens(sum(len(str(m.get("content") or "")) for m in chat.messages))
        return routing.plan(
            [routes],
            chat.strategy or self._svc.s.default_strategy,
            chat.prefs,
            est_in,
            self.out_bound,
            self._svc.health.latency_of,
        )

    async def cover(self, att: _Attempts, h: RouteHealth) -> None:
        """Before an attempt on att.route: the hold must cover the usage so far plus this route's price.
        When it cannot, the attempt is not made: the failed attempts' usage is recorded, then refused."""
        if self.hold is None or self.policy is None:
            return
        spent = rules.event_price_many(self.policy.rate_card, att.events)
        try:
            await self._svc.spend.top_up(self.hold, spent + self.route_hold(att.route))
        except (SpendCapReached, SpendCheckUnavailable):
            h.release()
            if att.events:
                await self._svc._record(att.events)
            raise

    def end(self) -> None:
        """Settle to the price of every usage event the request recorded; release when it recorded none."""
        if self.hold is None or self.policy is None:
            return
        events = self.att.events if self.att is not None else []
        if events:
            self._svc.spend.settle(self.hold, rules.event_price_many(self.policy.rate_card, events))
        else:
            self._svc.spend.release(self.hold)
