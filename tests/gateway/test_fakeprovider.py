"""The stand-in provider itself: OpenAI-compatible answers, deterministic usage, runtime controls.

The gateway's proof leans on these behaviours, so they are pinned here against the real program
(in-process aiohttp server and a `python -m fakeprovider` subprocess, real HTTP, the official openai client).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from fakeprovider.app import start

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say three words"}]


@pytest.fixture
async def provider():
    p = await start("127.0.0.1", 0, name="provider_a", api_key="sk-a")
    yield p
    await p.stop()


def client(p, key: str = "sk-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=p.base_url, api_key=key, max_retries=0, timeout=5)


async def test_openai_client_gets_a_completion_with_word_counted_usage(provider):
    reply = await client(provider).chat.completions.create(model="m1", messages=MESSAGES)
    assert reply.choices[0].message.content.split()[0] == "provider_a"
    assert reply.usage.prompt_tokens == 5  # "be brief" + "say three words"
    assert reply.usage.completion_tokens == 8
    assert reply.model == "m1"


async def test_stream_with_include_usage_ends_with_usage_chunk_and_honours_max_tokens(provider):
    stream = await client(provider).chat.completions.create(
        model="m1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, max_tokens=3
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "provider_a says hello"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 3, 8)


async def test_wrong_key_is_401_and_counted(provider):
    with pytest.raises(openai.AuthenticationError):
        await client(provider, "sk-wrong").chat.completions.create(model="m1", messages=MESSAGES)
    assert provider.stats()["by_outcome"] == {"unauthorized": 1}


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("400", openai.BadRequestError),
        ("reset", openai.APIConnectionError),
    ],
)
async def test_control_fail_next_makes_exactly_the_next_request_fail(provider, kind, error):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{provider.url}/_control", json={"fail_next": 1, "error_kinds": [kind]}) as r:
            assert r.status == 200
    c = client(provider)
    with pytest.raises(error):
        await c.chat.completions.create(model="m1", messages=MESSAGES)
    await c.chat.completions.create(model="m1", messages=MESSAGES)
    key = kind if kind == "reset" else f"error_{kind}"
    assert provider.stats()["by_outcome"] == {key: 1, "ok": 1}


async def test_timeout_kind_hangs_until_the_client_gives_up(provider):
    provider.control(fail_next=1, error_kinds=["timeout"])
    c = openai.AsyncOpenAI(base_url=provider.base_url, api_key="sk-a", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await c.chat.completions.create(model="m1", messages=MESSAGES)
    await asyncio.sleep(0.1)
    assert provider.stats()["in_flight"] == 0  # the hang was cancelled with the connection


async def test_midstream_sends_some_chunks_then_drops_the_connection(provider):
    provider.control(fail_next=1, error_kinds=["midstream"], midstream_after=2)
    got = []
    with pytest.raises(openai.APIConnectionError):
        stream = await client(provider).chat.completions.create(model="m1", messages=MESSAGES, stream=True)
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["", "provider_a", " says"]


async def test_omit_usage_reports_no_usage(provider):
    provider.control(omit_usage=True)
    reply = await client(provider).chat.completions.create(model="m1", messages=MESSAGES)
    assert reply.usage is None


async def test_error_rate_is_seeded_and_reproducible():
    outcomes = []
    for _ in range(2):
        p = await start("127.0.0.1", 0, name="p", error_rate=0.5, error_kinds=["500", "503"], seed=7)
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.post(
                    f"{p.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
                ):
                    pass
        outcomes.append(p.stats()["by_outcome"])
        await p.stop()
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0]["ok"] < 20


async def test_control_rejects_unknown_field_and_reset_restores_start_behaviour(provider):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{provider.url}/_control", json={"latency": 5}) as r:
            assert r.status == 400
            assert "latency" in (await r.json())["error"]
        async with http.post(f"{provider.url}/_control", json={"error_rate": 1}) as r:
            assert (await r.json())["error_rate"] == 1.0
        async with http.post(f"{provider.url}/_reset") as r:
            assert (await r.json())["error_rate"] == 0.0
        async with http.get(f"{provider.url}/_stats") as r:
            assert (await r.json())["requests"] == 0


async def test_strict_models_answers_404_and_lists_models():
    p = await start("127.0.0.1", 0, name="p", models=["a", "b"], strict_models=True)
    try:
        c = openai.AsyncOpenAI(base_url=p.base_url, api_key="x", max_retries=0)
        assert [m.id for m in (await c.models.list()).data] == ["a", "b"]
        with pytest.raises(openai.NotFoundError):
            await c.chat.completions.create(model="zzz", messages=MESSAGES)
    finally:
        await p.stop()


async def test_command_line_program_serves_and_stops_on_sigterm():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FAKEPROVIDER_COMPLETION_TOKENS": "2"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakeprovider",
        "--port",
        str(port),
        "--name",
        "provider_b",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        for _ in range(100):
            try:
                reply = await c.chat.completions.create(model="m", messages=MESSAGES)
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.05)
        assert reply.choices[0].message.content == "provider_b says"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    assert b"fakeprovider.stopped" in err
