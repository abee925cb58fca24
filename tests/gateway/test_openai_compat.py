"""The official `openai` package, unmodified, against the gateway's HTTP front door."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "name three colours"}]


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def secret(stack):
    secret, _ = await stack.create_key()
    return secret


@pytest.fixture(scope="module")
async def model(stack):
    return await stack.upsert_model([{"provider": "provider_a"}, {"provider": "provider_b"}])


@pytest.fixture(autouse=True)
def fresh_providers(stack):
    stack.reset_providers()
    yield
    stack.reset_providers()


async def test_non_streaming_completion_with_usage(stack, secret, model):
    reply = await stack.openai(secret).chat.completions.create(model=model, messages=MESSAGES)
    assert reply.object == "chat.completion"
    assert reply.model == model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.startswith("provider_b ")
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (5, 8, 13)


async def test_with_raw_response_shows_the_route_headers(stack, secret, model):
    raw = await stack.openai(secret).chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.headers.get("x-tollgate-provider") == "provider_b"
    assert raw.parse().choices[0].message.content


async def test_streaming_with_include_usage(stack, secret, model):
    stream = await stack.openai(secret).chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, max_tokens=4
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "provider_b says hello from"
    assert finish == "stop"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 4)


async def test_streaming_without_include_usage_sends_no_usage_chunk(stack, secret, model):
    stream = await stack.openai(secret).chat.completions.create(model=model, messages=MESSAGES, stream=True)
    chunks = [c async for c in stream]
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("provider_b")


async def test_models_list_shows_catalog_models(stack, secret, model):
    models = await stack.openai(secret).models.list()
    ids = [m.id for m in models.data]
    assert "chat-small" in ids and model in ids
    assert ids == sorted(ids)


async def test_bad_key_is_authentication_error(stack, model):
    with pytest.raises(openai.AuthenticationError) as err:
        await stack.openai("tg_wrong").chat.completions.create(model=model, messages=MESSAGES)
    assert err.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        await stack.openai("tg_wrong").models.list()


async def test_unknown_model_is_not_found(stack, secret):
    with pytest.raises(openai.NotFoundError) as err:
        await stack.openai(secret).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert err.value.status_code == 404
    assert "no-such-model" in err.value.message


async def test_rate_limit_is_rate_limit_error(stack, model):
    secret, _ = await stack.create_key(rate_limits={"requests_per_minute": 1})
    client = stack.openai(secret)
    await client.chat.completions.create(model=model, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model=model, messages=MESSAGES)
    assert err.value.status_code == 429
    assert err.value.response.headers.get("retry-after")


async def test_invalid_request_is_bad_request_naming_the_field(stack, secret, model):
    with pytest.raises(openai.BadRequestError) as err:
        await stack.openai(secret).chat.completions.create(model=model, messages=[])
    assert "messages" in err.value.message


async def test_all_providers_failing_is_a_server_error_not_a_hang(stack, secret, model):
    for p in stack.providers.values():
        p.control(fail_next=1, error_kinds=["503"])
    with pytest.raises(openai.APIStatusError) as err:
        await stack.openai(secret).chat.completions.create(model=model, messages=MESSAGES)
    assert err.value.status_code in (502, 503)


async def test_tollgate_metadata_field_is_accepted(stack, secret, model):
    reply = await stack.openai(secret).chat.completions.create(
        model=model, messages=MESSAGES, metadata={"tollgate_run_id": "run-1", "tollgate_tag_client": "acme"}
    )
    assert reply.choices[0].message.content


async def test_healthz_answers_without_a_key_and_unknown_paths_are_openai_404s(stack):
    async with stack.http.get(f"{stack.http_url}/healthz") as r:
        assert (r.status, await r.json()) == (200, {"status": "ok"})
    async with stack.http.get(f"{stack.http_url}/v1/embeddings") as r:
        body = await r.json()
        assert r.status == 404
        assert body["error"]["code"] == "unknown_url"
        assert "GET /v1/embeddings" in body["error"]["message"]
        assert "POST /v1/chat/completions" in body["error"]["message"]
