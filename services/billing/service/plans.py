"""Plans: create, read and list plans, publish their versions (also from YAML), and the
platform fee a builder's lines carry.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import (
    PlanSpec,
    PlatformFeeRule,
    minor_units,
    parse_plan_yaml,
    plan_from_dict,
    plan_to_dict,
)
from billing.domain.text import quote
from billing.service._core import (
    KEY,
    ServiceCore,
    _cursor,
    _new_id,
    _require,
    log,
)
from billing.service.views import (
    AppliedPlan,
    FeeView,
    PlanView,
    VersionView,
    fee_view,
    plan_view,
    version_view,
)
from common.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
)
from common.paging import encode_token, page_size


class Plans(ServiceCore):
    """Plans, their versions and the platform fee."""

    async def create_plan(self, request_id: str, p: dict[str, Any]) -> dict[str, Any]:
        _require(p["builder_id"], "plan.builder_id")
        if not KEY.fullmatch(p["key"]):
            raise InvalidArgument("plan.key must be 1 to 64 characters of [a-z0-9_.-]", field="plan.key")
        minor_units(p["currency_code"], field="plan.currency_code")

        async def work(conn: AsyncConnection) -> Any:
            row = await store.insert_plan(conn, {**p, "id": _new_id("plan")})
            if row is None:
                raise AlreadyExists(f"plan {quote(p['key'])} already exists", field="plan.key")
            return plan_view(row, [])

        return await self._idempotent("CreatePlan", p["builder_id"], request_id, p, work, PlanView)

    async def get_plan(self, builder_id: str, plan_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(plan_id, "plan_id")
        async with self.engine.connect() as conn:
            row = await store.get_plan(conn, builder_id, plan_id)
            if row is None:
                raise NotFound(f"plan {quote(plan_id)} not found", field="plan_id")
            versions = await store.plan_versions_of(conn, [plan_id])
        return plan_view(row, versions[plan_id])

    async def list_plans(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"key": str})
        async with self.engine.connect() as conn:
            rows = await store.list_plans(conn, builder_id, cursor["key"] if cursor else None, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            versions = await store.plan_versions_of(conn, [r["id"] for r in rows])
        return [plan_view(r, versions[r["id"]]) for r in rows], encode_token(
            {"key": rows[-1]["key"]}
        ) if more else ""

    async def _publish(self, conn: AsyncConnection, plan: dict, spec: PlanSpec) -> dict[str, Any]:
        await store.lock_plan(conn, plan["id"])
        latest = await store.latest_plan_version(conn, plan["id"])
        row = await store.insert_plan_version(
            conn, plan["id"], (latest["version"] if latest else 0) + 1, plan_to_dict(spec)
        )
        log.info("billing.plan.published", plan_id=plan["id"], version=row["version"])
        return row

    async def publish_plan_version(
        self, request_id: str, builder_id: str, plan_id: str, spec_dict: dict[str, Any]
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(plan_id, "version.plan_id")
        try:
            spec = plan_from_dict(spec_dict)
        except InvalidArgument as exc:
            raise InvalidArgument(
                exc.message, field=f"version.{exc.field}" if exc.field else "version"
            ) from None

        async def work(conn: AsyncConnection) -> Any:
            plan = await store.get_plan(conn, builder_id, plan_id)
            if plan is None:
                raise NotFound(f"plan {quote(plan_id)} not found", field="version.plan_id")
            if spec.currency != plan["currency_code"]:
                raise InvalidArgument(
                    f"the plan is priced in {plan['currency_code']}", field="version.currency_code"
                )
            return version_view(await self._publish(conn, plan, spec))

        body = {"builder_id": builder_id, "plan_id": plan_id, "spec": spec_dict}
        return await self._idempotent("PublishPlanVersion", builder_id, request_id, body, work, VersionView)

    async def apply_plan_yaml(
        self, request_id: str, builder_id: str, plan_key: str, display_name: str, text: str
    ) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        if not KEY.fullmatch(plan_key):
            raise InvalidArgument("plan_key must be 1 to 64 characters of [a-z0-9_.-]", field="plan_key")
        try:
            # Off the event loop: parsing up to 64 KiB of YAML in pure Python takes milliseconds that
            # every other call on this process would otherwise wait for.
            spec = await asyncio.to_thread(parse_plan_yaml, text)
        except InvalidArgument as exc:
            raise InvalidArgument(
                exc.message, field=f"yaml.{exc.field}" if exc.field and exc.field != "yaml" else "yaml"
            ) from None

        async def work(conn: AsyncConnection) -> Any:
            plan = await store.get_plan_by_key(conn, builder_id, plan_key)
            if plan is None:
                plan = await store.insert_plan(
                    conn,
                    {
                        "id": _new_id("plan"),
                        "builder_id": builder_id,
                        "key": plan_key,
                        "display_name": display_name or plan_key,
                        "currency_code": spec.currency,
                    },
                )
                if plan is None:
                    raise AlreadyExists(
                        f"plan {quote(plan_key)} was created concurrently; retry", field="plan_key"
                    )
            if spec.currency != plan["currency_code"]:
                raise InvalidArgument(f"the plan is priced in {plan['currency_code']}", field="yaml.currency")
            await store.lock_plan(conn, plan["id"])
            latest = await store.latest_plan_version(conn, plan["id"])
            published = latest is None or latest["spec"] != plan_to_dict(spec)
            version = await self._publish(conn, plan, spec) if published else latest
            versions = await store.plan_versions_of(conn, [plan["id"]])
            return AppliedPlan(plan_view(plan, versions[plan["id"]]), version_view(version), published)

        body = {"builder_id": builder_id, "plan_key": plan_key, "display_name": display_name, "yaml": text}
        return await self._idempotent("ApplyPlanYaml", builder_id, request_id, body, work, AppliedPlan)

    async def set_platform_fee(
        self, request_id: str, builder_id: str, percent_of_line: str, percent_of_margin: str
    ) -> dict[str, Any]:
        _require(builder_id, "platform_fee.builder_id")
        values = {}
        for name, raw in (("percent_of_line", percent_of_line), ("percent_of_margin", percent_of_margin)):
            try:
                values[name] = Decimal(raw or "0")
            except ArithmeticError:
                raise InvalidArgument(
                    f"{quote(raw)} is not a decimal number", field=f"platform_fee.{name}"
                ) from None
        rule = PlatformFeeRule(**values).validate(prefix="platform_fee")

        async def work(conn: AsyncConnection) -> Any:
            row = await store.set_platform_fee(conn, builder_id, rule.percent_of_line, rule.percent_of_margin)
            return fee_view(row)

        body = {"builder_id": builder_id, "line": percent_of_line, "margin": percent_of_margin}
        return await self._idempotent("SetPlatformFee", builder_id, request_id, body, work, FeeView)
