"""Customers: create, read and list a builder's paying customers."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing import store
from billing.domain import (
    minor_units,
)
from billing.domain.text import quote
from billing.service._core import (
    ServiceCore,
    _cursor,
    _require,
    log,
)
from billing.service.views import (
    CustomerView,
    customer_view,
)
from common.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
)
from common.paging import encode_token, page_size


class Customers(ServiceCore):
    """A builder's paying customers."""

    async def create_customer(self, request_id: str, c: dict[str, Any]) -> dict[str, Any]:
        _require(c["builder_id"], "customer.builder_id")
        _require(c["id"], "customer.id")
        if len(c["app_id"]) > 128:
            raise InvalidArgument("customer.app_id must be at most 128 characters", field="customer.app_id")
        minor_units(c["currency_code"], field="customer.currency_code")
        if len(c["display_name"]) > 256:
            raise InvalidArgument(
                "customer.display_name must be at most 256 characters", field="customer.display_name"
            )
        email = c["billing_email"]
        if email and (len(email) > 256 or "@" not in email):
            raise InvalidArgument(
                "customer.billing_email must be an email address", field="customer.billing_email"
            )

        async def work(conn: AsyncConnection) -> Any:
            row = await store.insert_customer(conn, c)
            if row is None:
                raise AlreadyExists(f"customer {quote(c['id'])} already exists", field="customer.id")
            log.info("billing.customer.created", builder_id=c["builder_id"], customer_id=c["id"])
            return customer_view(row)

        return await self._idempotent("CreateCustomer", c["builder_id"], request_id, c, work, CustomerView)

    async def get_customer(self, builder_id: str, customer_id: str) -> dict[str, Any]:
        _require(builder_id, "builder_id")
        _require(customer_id, "customer_id")
        async with self.engine.connect() as conn:
            row = await store.get_customer(conn, builder_id, customer_id)
        if row is None:
            raise NotFound(f"customer {quote(customer_id)} not found", field="customer_id")
        return customer_view(row)

    async def list_customers(self, builder_id: str, size: int, token: str) -> tuple[list[dict], str]:
        _require(builder_id, "builder_id")
        limit = page_size(size)
        cursor = _cursor(token, {"id": str})
        async with self.engine.connect() as conn:
            rows = await store.list_customers(conn, builder_id, cursor["id"] if cursor else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [customer_view(r) for r in rows], encode_token({"id": rows[-1]["id"]}) if more else ""
