"""Subscriptions: put a customer on a plan version, and schedule a plan change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import (
    period_containing,
    plan_change_effective_time,
)
from billing.domain.text import quote
from billing.service._core import (
    ServiceCore,
    _new_id,
    _require,
    log,
)
from billing.service.views import (
    SubscriptionView,
    _t,
    subscription_view,
)
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)


class Subscriptions(ServiceCore):
    """A customer's plan over time."""

    async def _version(
        self, conn: AsyncConnection, builder_id: str, plan_id: str, version: int, currency: str
    ) -> dict[str, Any]:
        plan = await store.get_plan(conn, builder_id, plan_id)
        if plan is None:
            raise NotFound(f"plan {quote(plan_id)} not found", field="plan_id")
        if version < 0:
            raise InvalidArgument("plan_version must not be negative", field="plan_version")
        row = await (
            store.latest_plan_version(conn, plan_id)
            if version == 0
            else store.get_plan_version(conn, plan_id, version)
        )
        if row is None:
            if version == 0:
                raise FailedPrecondition(f"plan {quote(plan_id)} has no published version", field="plan_id")
            raise NotFound(f"plan {quote(plan_id)} has no version {version}", field="plan_version")
        if plan["currency_code"] != currency:
            raise FailedPrecondition(
                f"plan is priced in {plan['currency_code']} but the customer pays in {currency}",
                field="plan_id",
            )
        return row

    async def subscribe(
        self,
        request_id: str,
        builder_id: str,
        customer_id: str,
        plan_id: str,
        version: int,
        start: datetime | None,
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        _require(plan_id, "plan_id", max_len=64)

        async def work(conn: AsyncConnection) -> Any:
            customer = await store.get_customer(conn, builder_id, customer_id)
            if customer is None:
                raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
            row = await self._version(conn, builder_id, plan_id, version, customer["currency_code"])
            sub = await store.insert_subscription(
                conn,
                {
                    "id": _new_id("sub"),
                    "builder_id": builder_id,
                    "customer_id": customer_id,
                    "plan_id": plan_id,
                    "plan_version": row["version"],
                    "start_time": start or self.clock(),
                },
            )
            if sub is None:
                raise AlreadyExists(
                    f"customer {quote(customer_id)} is already subscribed; use ChangePlan",
                    field="customer_id",
                )
            log.info(
                "billing.subscription.created",
                builder_id=builder_id,
                customer_id=customer_id,
                plan_id=plan_id,
                plan_version=row["version"],
            )
            return subscription_view(sub)

        body = {
            "builder_id": builder_id,
            "customer_id": customer_id,
            "plan_id": plan_id,
            "version": version,
            "start": _t(start),
        }
        return await self._idempotent("Subscribe", builder_id, request_id, body, work, SubscriptionView)

    async def change_plan(
        self,
        request_id: str,
        builder_id: str,
        customer_id: str,
        plan_id: str,
        version: int,
        *,
        immediately: bool = False,
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        _require(plan_id, "plan_id", max_len=64)

        async def work(conn: AsyncConnection) -> Any:
            sub = await store.get_subscription(conn, builder_id, customer_id, for_update=True)
            if sub is None:
                raise NotFound(f"customer {quote(customer_id)} has no subscription", field="customer_id")
            if sub["end_time"] is not None:
                raise FailedPrecondition(
                    f"the subscription of {quote(customer_id)} was cancelled", field="customer_id"
                )
            customer = await store.get_customer(conn, builder_id, customer_id)
            assert customer is not None
            row = await self._version(conn, builder_id, plan_id, version, customer["currency_code"])
            now = self.clock()
            changed = sub["change_time"]
            if changed is not None and changed <= now and period_containing(changed).start != changed:
                # An immediate change splits its period, which the close reads from this row: the
                # row must keep both versions until that period is invoiced.
                split = period_containing(changed)
                if customer_id not in await store.invoiced_customers(conn, builder_id, split.start):
                    raise FailedPrecondition(
                        f"the plan was changed immediately in {split.label}; change it again once that"
                        " period is invoiced",
                        field="customer_id",
                    )
            values: dict[str, Any] = {}
            if sub["change_time"] is not None and sub["change_time"] <= now:
                # The earlier change is in force already: it becomes the current version.
                values.update(plan_id=sub["next_plan_id"], plan_version=sub["next_plan_version"])
            values.update(
                next_plan_id=plan_id,
                next_plan_version=row["version"],
                change_time=max(now, sub["start_time"])
                if immediately
                else plan_change_effective_time(max(now, sub["start_time"])),
            )
            sub = await store.update_subscription(conn, sub["id"], values)
            log.info(
                "billing.subscription.change_scheduled",
                builder_id=builder_id,
                customer_id=customer_id,
                plan_id=plan_id,
                plan_version=row["version"],
                change_time=_t(sub["change_time"]),
            )
            return subscription_view(sub)

        body = {"builder_id": builder_id, "customer_id": customer_id, "plan_id": plan_id, "version": version}
        if immediately:  # only then, so a retry of a request stored before the option still matches
            body["immediately"] = True
        return await self._idempotent("ChangePlan", builder_id, request_id, body, work, SubscriptionView)

    async def cancel_subscription(
        self, request_id: str, builder_id: str, customer_id: str, *, immediately: bool
    ) -> SubscriptionView:
        """End a subscription now (its period is invoiced prorated to this moment, at that period's
        close) or at the end of the current period (invoiced in full). A subscription that has not
        started yet ends when it would start (nothing is invoiced) or at the end of its first period."""
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")

        async def work(conn: AsyncConnection) -> Any:
            sub = await store.get_subscription(conn, builder_id, customer_id, for_update=True)
            if sub is None:
                raise NotFound(f"customer {quote(customer_id)} has no subscription", field="customer_id")
            if sub["end_time"] is not None:
                raise FailedPrecondition(
                    f"the subscription of {quote(customer_id)} was already cancelled", field="customer_id"
                )
            now = max(self.clock(), sub["start_time"])
            end = now if immediately else plan_change_effective_time(now)
            sub = await store.update_subscription(conn, sub["id"], {"end_time": end})
            log.info(
                "billing.subscription.cancelled",
                builder_id=builder_id,
                customer_id=customer_id,
                immediately=immediately,
                end_time=_t(end),
            )
            return subscription_view(sub)

        body = {"builder_id": builder_id, "customer_id": customer_id, "immediately": immediately}
        return await self._idempotent(
            "CancelSubscription", builder_id, request_id, body, work, SubscriptionView
        )
