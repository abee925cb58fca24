"""The request-id idempotency helper against real PostgreSQL, including concurrent duplicates."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, select

from common.db import create_engine, new_metadata
from common.errors import AlreadyExists
from common.idempotency import claim, complete, fingerprint, idempotency_table


@pytest.fixture(scope="module")
async def db(make_database):
    url = await make_database("common")
    metadata: MetaData = new_metadata()
    keys = idempotency_table(metadata)
    work = Table("work_done", metadata, Column("id", Integer, primary_key=True, autoincrement=True))
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine, keys, work
    await engine.dispose()


async def _do(engine, keys, work, request_id: str, body: dict, pause: float = 0.0):
    async with engine.begin() as conn:
        prior = await claim(conn, keys, "test.Do", request_id, fingerprint(body))
        if prior is not None:
            return prior
        row_id = (await conn.execute(work.insert().returning(work.c.id))).scalar_one()
        await asyncio.sleep(pause)  # hold the transaction open so duplicates pile up behind it
        reply = {"id": row_id}
        await complete(conn, keys, "test.Do", request_id, reply)
        return reply


async def _count(engine, work) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(work))).scalar_one()


async def test_retry_with_same_request_id_returns_first_reply_and_does_no_work(db):
    engine, keys, work = db
    before = await _count(engine, work)
    first = await _do(engine, keys, work, "req-1", {"a": 1})
    second = await _do(engine, keys, work, "req-1", {"a": 1})
    assert second == first
    assert await _count(engine, work) == before + 1


async def test_same_request_id_with_different_body_is_already_exists_and_has_no_effect(db):
    engine, keys, work = db
    await _do(engine, keys, work, "req-2", {"a": 1})
    before = await _count(engine, work)
    with pytest.raises(AlreadyExists) as info:
        await _do(engine, keys, work, "req-2", {"a": 2})
    assert info.value.field == "request_id"
    assert await _count(engine, work) == before


async def test_concurrent_duplicates_do_the_work_once(db):
    engine, keys, work = db
    before = await _count(engine, work)
    replies = await asyncio.gather(
        *[_do(engine, keys, work, "req-3", {"a": 3}, pause=0.05) for _ in range(8)]
    )
    assert len({r["id"] for r in replies}) == 1
    assert await _count(engine, work) == before + 1


async def test_a_rolled_back_first_attempt_leaves_the_request_id_free(db):
    engine, keys, work = db
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            assert await claim(conn, keys, "test.Do", "req-4", fingerprint({"a": 4})) is None
            raise RuntimeError("crash before commit")
    reply = await _do(engine, keys, work, "req-4", {"a": 4})
    assert "id" in reply
