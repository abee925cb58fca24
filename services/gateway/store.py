"""The gateway's tables and queries: catalog, API keys, idempotency, the usage outbox.

Admin use cases go through SQLAlchemy Core; the outbox hot path (one INSERT per group commit) and the
relay use raw asyncpg through a small pool of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.db import libpq_url, new_metadata
from common.idempotency import idempotency_table
from gateway.domain.catalog import Model, Offering, Provider
from gateway.domain.keys import ApiKey, RateLimits

# What the hot path treats as "the database cannot be reached right now" (retry, or 503 to the caller):
# server errors, a lost connection, and asyncpg's InternalClientError, which a pooled connection raises
# while PostgreSQL shuts down ("cannot switch to state ...; another operation is in progress").
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

metadata = new_metadata()

# NOTIFY channel: admin changes (keys, catalog) wake every instance's cache reload at once.
CHANGES_CHANNEL = "tollgate_gateway_changes"

providers = Table(
    "providers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("base_url", Text, nullable=False),
    # The name of an environment variable, never a secret.
    Column("credential_env", String(128), nullable=False, server_default=""),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

models = Table(
    "models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

offerings = Table(
    "offerings",
    metadata,
    Column("model_name", String(128), ForeignKey("models.name", ondelete="CASCADE"), primary_key=True),
    Column("offering_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("provider", String(64), ForeignKey("providers.name"), nullable=False),
    Column("upstream_model", String(256), nullable=False),
    Column("base_url", Text, nullable=False, server_default=""),
    Column("credential_env", String(128), nullable=False, server_default=""),
    # USD per million tokens, exact.
    Column("input_price_per_mtok", Numeric(38, 9), nullable=False),
    Column("output_price_per_mtok", Numeric(38, 9), nullable=False),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    # sha256 hex of the secret; the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("secret_prefix", String(16), nullable=False),
    Column("builder_id", String(128), nullable=False),
    Column("app_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("display_name", String(256), nullable=False, server_default=""),
    Column("default_tags", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("requests_per_minute", BigInteger, nullable=False, server_default="0"),
    Column("tokens_per_minute", BigInteger, nullable=False, server_default="0"),
    # Test key (usage recorded as TEST) or live; set on insert only: a trigger refuses any update of
    # it (migration 0003), so a key can never switch mode.
    Column("test", Boolean, nullable=False, server_default="false"),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoke_time", DateTime(timezone=True), nullable=True),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_api_keys_builder_id_create_time", "builder_id", "create_time"),
)

usage_outbox = Table(
    "usage_outbox",
    metadata,
    Column("seq", BigInteger, Identity(always=False), primary_key=True),
    # Event ids are scoped by builder, as in metering: (builder_id, <request_id>:<attempt>) is unique.
    Column("builder_id", String(128), nullable=False, server_default=""),
    Column("event_id", String(160), nullable=False),
    # A serialized tollgate.metering.v1.UsageEvent.
    Column("payload", LargeBinary, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_time", DateTime(timezone=True), nullable=True),
    Column("parked_reason", Text, nullable=True),
    UniqueConstraint("builder_id", "event_id"),
    Index(
        "ix_usage_outbox_pending",
        "seq",
        postgresql_where=text("delivered_time IS NULL AND parked_reason IS NULL"),
    ),
)

idempotency = idempotency_table(metadata)

# Client-supplied chat request ids, per builder (see README "Request ids"): the body's fingerprint
# decides reuse (refused) from retry (served), and reserved_attempts is how many attempt numbers
# earlier calls with this id reserved, so a retry's events get ids of their own. Never pruned:
# forgetting an id would let a later call reuse event ids metering already holds.
request_ids = Table(
    "request_ids",
    metadata,
    Column("builder_id", String(128), primary_key=True),
    Column("request_id", String(100), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("reserved_attempts", BigInteger, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _key_from_row(r: Any) -> ApiKey:
    return ApiKey(
        id=r.id,
        builder_id=r.builder_id,
        app_id=r.app_id,
        customer_id=r.customer_id,
        display_name=r.display_name,
        default_tags=dict(r.default_tags or {}),
        rate_limits=RateLimits(int(r.requests_per_minute), int(r.tokens_per_minute)),
        secret_prefix=r.secret_prefix,
        test=bool(r.test),
        create_time=r.create_time,
        revoke_time=r.revoke_time,
    )


class Store:
    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        self.engine = engine
        self._url = libpq_url(database_url)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._url, min_size=2, max_size=4, server_settings={"application_name": "tollgate-gateway-outbox"}
        )

    async def notify_changed(self, conn: AsyncConnection) -> None:
        """Tell every gateway instance to reload keys and catalog; delivered when `conn` commits."""
        await conn.execute(text(f"SELECT pg_notify('{CHANGES_CHANNEL}', '')"))

    async def listen_changes(self, callback: Callable[[], None]) -> asyncpg.Connection:
        """A connection that calls `callback` on every committed change notification."""
        conn = await asyncpg.connect(
            self._url, server_settings={"application_name": "tollgate-gateway-listen"}
        )
        await conn.add_listener(CHANGES_CHANNEL, lambda *_: callback())
        return conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self.engine.dispose()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Store.open() was not called"
        return self._pool

    # ---- catalog ----

    async def load_catalog(self) -> tuple[dict[str, Provider], list[Model], dict[str, datetime]]:
        async with self.engine.connect() as conn:
            prov = {
                r.name: Provider(r.name, r.base_url, r.credential_env)
                for r in await conn.execute(select(providers))
            }
            rows = await conn.execute(
                select(offerings).order_by(offerings.c.model_name, offerings.c.position)
            )
            times = {r.name: r.update_time for r in await conn.execute(select(models))}
        by_model: dict[str, list[Offering]] = {name: [] for name in times}
        for r in rows:
            by_model.setdefault(r.model_name, []).append(_offering(r))
        return prov, [Model(name, tuple(offs)) for name, offs in sorted(by_model.items())], times

    async def provider_names(self, conn: AsyncConnection) -> set[str]:
        return set((await conn.execute(select(providers.c.name))).scalars())

    async def upsert_provider(self, conn: AsyncConnection, p: Provider) -> datetime:
        stmt = insert(providers).values(name=p.name, base_url=p.base_url, credential_env=p.credential_env)
        stmt = stmt.on_conflict_do_update(
            index_elements=[providers.c.name],
            set_={
                "base_url": stmt.excluded.base_url,
                "credential_env": stmt.excluded.credential_env,
                "update_time": func.now(),
            },
        ).returning(providers.c.update_time)
        return (await conn.execute(stmt)).scalar_one()

    async def upsert_model(self, conn: AsyncConnection, m: Model) -> datetime:
        stmt = insert(models).values(name=m.name)
        stmt = stmt.on_conflict_do_update(index_elements=[models.c.name], set_={"update_time": func.now()})
        t = (await conn.execute(stmt.returning(models.c.update_time))).scalar_one()
        await conn.execute(delete(offerings).where(offerings.c.model_name == m.name))
        await conn.execute(
            insert(offerings),
            [
                {
                    "model_name": m.name,
                    "offering_id": o.id,
                    "position": i,
                    "provider": o.provider,
                    "upstream_model": o.upstream_model,
                    "base_url": o.base_url,
                    "credential_env": o.credential_env,
                    "input_price_per_mtok": o.input_price_per_mtok,
                    "output_price_per_mtok": o.output_price_per_mtok,
                    "weight": o.weight,
                    "enabled": o.enabled,
                }
                for i, o in enumerate(m.offerings)
            ],
        )
        return t

    # ---- keys ----

    async def insert_key(self, conn: AsyncConnection, key: ApiKey, secret_hash: str) -> ApiKey:
        row = (
            await conn.execute(
                insert(api_keys)
                .values(
                    id=key.id,
                    secret_hash=secret_hash,
                    secret_prefix=key.secret_prefix,
                    builder_id=key.builder_id,
                    app_id=key.app_id,
                    customer_id=key.customer_id,
                    display_name=key.display_name,
                    default_tags=key.default_tags,
                    requests_per_minute=key.rate_limits.requests_per_minute,
                    tokens_per_minute=key.rate_limits.tokens_per_minute,
                    test=key.test,
                )
                .returning(api_keys)
            )
        ).one()
        return _key_from_row(row)

    async def get_key(self, conn: AsyncConnection, key_id: str) -> ApiKey | None:
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return None if row is None else _key_from_row(row)

    async def revoke_key(self, conn: AsyncConnection, key_id: str) -> ApiKey | None:
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoke_time.is_(None))
            .values(revoke_time=func.now(), update_time=func.now())
        )
        return await self.get_key(conn, key_id)

    async def list_keys(
        self,
        builder_id: str,
        customer_id: str,
        include_revoked: bool,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[ApiKey]:
        q = select(api_keys)
        if builder_id:
            q = q.where(api_keys.c.builder_id == builder_id)
        if customer_id:
            q = q.where(api_keys.c.customer_id == customer_id)
        if not include_revoked:
            q = q.where(api_keys.c.revoke_time.is_(None))
        if after is not None:
            t, kid = after
            q = q.where(
                or_(api_keys.c.create_time < t, and_(api_keys.c.create_time == t, api_keys.c.id < kid))
            )
        q = q.order_by(api_keys.c.create_time.desc(), api_keys.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_key_from_row(r) for r in await conn.execute(q)]

    async def load_keys(self) -> list[tuple[str, ApiKey]]:
        """Every key with its hash (revoked ones too, so a revocation elsewhere is seen)."""
        async with self.engine.connect() as conn:
            return [(r.secret_hash, _key_from_row(r)) for r in await conn.execute(select(api_keys))]

    # ---- outbox ----

    async def connect_outbox_writer(self, synchronous_commit: str) -> asyncpg.Connection:
        """A dedicated connection for the group-commit writer; synchronous_commit is set for its session
        only (see README "Outbox" for what "off" can and cannot lose)."""
        return await asyncpg.connect(
            self._url,
            server_settings={
                "application_name": "tollgate-gateway-outbox-writer",
                "synchronous_commit": synchronous_commit,
            },
        )

    async def append_outbox(
        self, conn: asyncpg.Connection, builder_ids: list[str], event_ids: list[str], payloads: list[bytes]
    ) -> None:
        """One statement (its own transaction, one round trip) for a whole group of events; an event
        already in the outbox under the same builder and id (written twice after a lost reply) is
        skipped."""
        await conn.execute(
            "INSERT INTO usage_outbox (builder_id, event_id, payload) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) "
            "ON CONFLICT (builder_id, event_id) DO NOTHING",
            builder_ids,
            event_ids,
            payloads,
        )

    async def reserve_attempts(
        self, builder_id: str, request_id: str, fingerprint: str, count: int
    ) -> int | None:
        """Reserve `count` attempt numbers for a call with a client-supplied request id, in one
        statement. Returns how many earlier calls with this id had reserved (the new attempts are
        numbered after them), or None when the id was used with a different fingerprint."""
        async with self.pool.acquire() as conn:
            return await conn.fetchval(
                "INSERT INTO request_ids AS r (builder_id, request_id, fingerprint, reserved_attempts) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (builder_id, request_id) DO UPDATE "
                "SET reserved_attempts = r.reserved_attempts + $4, update_time = now() "
                "WHERE r.fingerprint = EXCLUDED.fingerprint RETURNING r.reserved_attempts - $4",
                builder_id,
                request_id,
                fingerprint,
                count,
            )

    async def claim_pending(self, conn: asyncpg.Connection, limit: int) -> tuple[list[int], list[bytes]]:
        """Lock the oldest undelivered rows (others' locked rows skipped); call inside a transaction.
        Returns their sequence numbers and payloads, oldest first (two arrays: one row, one decode)."""
        row = await conn.fetchrow(
            "SELECT coalesce(array_agg(seq ORDER BY seq), '{}'), "
            "coalesce(array_agg(payload ORDER BY seq), '{}') FROM (SELECT seq, payload FROM usage_outbox "
            "WHERE delivered_time IS NULL AND parked_reason IS NULL "
            "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) AS claimed",
            limit,
        )
        return row[0], row[1]

    async def mark_delivered(self, conn: asyncpg.Connection, seqs: list[int]) -> None:
        if seqs:
            await conn.execute(
                "UPDATE usage_outbox SET delivered_time = now() WHERE seq = ANY($1::bigint[])", seqs
            )

    async def park(self, conn: asyncpg.Connection, parked: list[tuple[int, str]]) -> None:
        if parked:
            await conn.execute(
                "UPDATE usage_outbox SET parked_reason = p.reason "
                "FROM unnest($1::bigint[], $2::text[]) AS p(seq, reason) WHERE usage_outbox.seq = p.seq",
                [s for s, _ in parked],
                [r for _, r in parked],
            )

    async def prune_delivered(self, older_than_hours: float) -> int:
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM usage_outbox WHERE delivered_time < now() - make_interval(secs => $1)",
                older_than_hours * 3600.0,
            )
        return int(status.split()[-1])

    async def outbox_backlog(self) -> tuple[int, float]:
        """Rows waiting for delivery and the age in seconds of the oldest (0 when none), for metrics.
        Both read the pending partial index; the count walks the backlog, which is short unless
        metering is down."""
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM usage_outbox "
                "WHERE delivered_time IS NULL AND parked_reason IS NULL), "
                "coalesce(extract(epoch FROM now() - (SELECT create_time FROM usage_outbox "
                "WHERE delivered_time IS NULL AND parked_reason IS NULL ORDER BY seq LIMIT 1)), 0)::float8"
            )
        return int(r[0]), max(0.0, float(r[1]))

    async def outbox_counts(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE delivered_time IS NULL AND parked_reason IS NULL) AS pending, "
                "count(*) FILTER (WHERE delivered_time IS NOT NULL) AS delivered, "
                "count(*) FILTER (WHERE parked_reason IS NOT NULL) AS parked FROM usage_outbox"
            )
        return dict(r)


def _offering(r: Any) -> Offering:
    return Offering(
        id=r.offering_id,
        provider=r.provider,
        upstream_model=r.upstream_model,
        input_price_per_mtok=Decimal(r.input_price_per_mtok),
        output_price_per_mtok=Decimal(r.output_price_per_mtok),
        base_url=r.base_url,
        credential_env=r.credential_env,
        weight=r.weight,
        enabled=r.enabled,
    )
