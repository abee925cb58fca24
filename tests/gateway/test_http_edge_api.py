"""The HTTP door's edges: an oversized header is answered exactly like a bad key, and no part of it is
echoed or logged; a body over the limit is 413 in OpenAI's error JSON."""

from __future__ import annotations

import logging

import aiohttp
import pytest
import structlog

from gateway.http_api import MAX_BODY_BYTES, MAX_HEADER_BYTES


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def model(stack):
    return await stack.upsert_model([{"provider": "provider_a"}])


async def raw_post(stack, headers: dict[str, str], data=b"{}") -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{stack.http_url}/v1/chat/completions", headers=headers, data=data) as r:
            return r.status, await r.read()


@pytest.mark.parametrize("header", ["Authorization", "X-Tollgate-Tag-Workspace", "X-Anything"])
async def test_an_oversized_header_gets_the_bad_key_answer_and_is_never_echoed_or_logged(
    stack, model, header, capfd, caplog
):
    marker = "ZQXJ"  # the value's text, looked for in every answer and log line
    value = ("Bearer tg_" if header == "Authorization" else "") + marker * (MAX_HEADER_BYTES // 4 + 10)
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        status, body = await raw_post(stack, {header: value, "Content-Type": "application/json"})
        bad_key_status, bad_key_body = await raw_post(stack, {"Authorization": "Bearer tg_wrong"})
    assert status == 401
    assert (status, body) == (bad_key_status, bad_key_body)  # byte for byte the bad-key answer
    assert b'"code":"invalid_api_key"' in body
    assert marker.encode() not in body
    out, err = capfd.readouterr()
    logged = repr(events) + out + err + caplog.text
    assert marker not in logged
    assert marker[:3] not in logged


async def test_a_body_declared_over_the_limit_is_413_in_openai_error_json(stack):
    secret, _ = await stack.create_key()
    reader_headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/json",
        "Content-Length": str(MAX_BODY_BYTES + 1),
    }
    async with aiohttp.ClientSession() as s:
        # Declares one byte more than allowed and sends a little: answered before the rest is read.
        async with s.post(
            f"{stack.http_url}/v1/chat/completions", headers=reader_headers, data=b"{" + b" " * 1000
        ) as r:
            status, doc = r.status, await r.json(content_type=None)
    assert status == 413
    assert doc["error"]["code"] == "request_too_large" and doc["error"]["type"] == "invalid_request_error"


async def test_a_chunked_body_growing_over_the_limit_is_413(stack):
    secret, _ = await stack.create_key()

    async def chunks():
        piece = b" " * (1024 * 1024)
        yield b"{"
        for _ in range(MAX_BODY_BYTES // len(piece) + 1):
            yield piece

    status, body = await raw_post(
        stack, {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}, data=chunks()
    )
    assert status == 413, body[:200]
    assert b'"code":"request_too_large"' in body
