"""Per-key rate limits: requests per minute and tokens per minute, over gRPC and HTTP."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.gateway.conftest import bearer, chat_request


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


@pytest.fixture(scope="module")
async def model(stack):
    return await stack.upsert_model([{"provider": "provider_a"}])


def retry_info(err: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(err)
    for detail in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info
    return None


async def test_requests_per_minute_is_resource_exhausted_with_retry_info(stack, model):
    secret, _ = await stack.create_key(rate_limits={"requests_per_minute": 3})
    for _ in range(3):
        await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
    before = stack.providers["provider_a"].stats()["requests"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = retry_info(err.value)
    assert info is not None, "no RetryInfo detail"
    # One request's worth of a 3/min bucket refills in 20 s.
    assert 0 < info.retry_delay.ToMilliseconds() <= 20_000
    assert stack.providers["provider_a"].stats()["requests"] == before  # rejected before any upstream call


async def test_requests_per_minute_over_http_is_429_with_retry_after(stack, model):
    secret, _ = await stack.create_key(rate_limits={"requests_per_minute": 2})
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    statuses = [(await stack.post_chat(secret, body))[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, headers, err = await stack.post_chat(secret, body)
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 30
    assert err["error"]["type"] in ("rate_limit_error", "rate_limit_exceeded", "requests")
    assert "rate" in err["error"]["message"].lower()


async def test_limits_are_per_key(stack, model):
    limited, _ = await stack.create_key(rate_limits={"requests_per_minute": 1})
    other, _ = await stack.create_key()
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    assert (await stack.post_chat(limited, body))[0] == 200
    assert (await stack.post_chat(limited, body))[0] == 429
    assert [(await stack.post_chat(other, body))[0] for _ in range(3)] == [200, 200, 200]


async def test_tokens_per_minute_rejects_once_answers_used_the_budget(stack, model):
    # Each answer is 2 prompt words + 8 completion tokens = 10 tokens; the budget is 25 per minute.
    secret, _ = await stack.create_key(rate_limits={"tokens_per_minute": 25})
    body = {"model": model, "messages": [{"role": "user", "content": "hi there"}]}
    statuses = [(await stack.post_chat(secret, body))[0] for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    status, headers, _ = await stack.post_chat(secret, body)
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    with pytest.raises(grpc.aio.AioRpcError) as gerr:
        await stack.inference.CreateChatCompletion(chat_request(model), metadata=bearer(secret), timeout=5)
    assert gerr.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_info(gerr.value) is not None
