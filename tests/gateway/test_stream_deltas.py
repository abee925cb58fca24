"""gRPC streaming sends the provider chunks that arrived together as one delta per choice, and
chunks that arrive apart as deltas of their own (the gateway streams, it does not buffer)."""

from __future__ import annotations

import pytest

from gateway.api import _merged_deltas
from tests.gateway.conftest import bearer, stream_request


def _frame(index: int, content: str | None = None, role: str | None = None, finish: str | None = None):
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return [{"index": index, "delta": delta, "finish_reason": finish}]


def _view(deltas):
    return [(d.index, d.role, d.content, d.finish_reason) for d in deltas]


def test_pieces_of_one_choice_join_in_order_with_the_first_role_and_the_last_finish_reason():
    frames = [
        _frame(0, "", role="assistant"),
        _frame(0, "Hel"),
        _frame(0, "lo, "),
        _frame(0, "world"),
        _frame(0, finish="stop"),
    ]
    assert _view(_merged_deltas(frames)) == [(0, "assistant", "Hello, world", "stop")]


def test_each_choice_keeps_its_own_text_in_first_seen_order():
    frames = [_frame(1, "b1"), _frame(0, "a1"), _frame(1, "b2", finish="length"), _frame(0, "a2")]
    assert _view(_merged_deltas(frames)) == [(1, "", "b1b2", "length"), (0, "", "a1a2", "")]


def test_a_role_that_arrives_late_is_kept_and_nothing_after_a_finish_is_merged_into_it():
    frames = [_frame(0, "x"), _frame(0, "y", role="assistant", finish="stop"), _frame(0, "z")]
    assert _view(_merged_deltas(frames)) == [(0, "assistant", "xy", "stop"), (0, "", "z", "")]


def test_nothing_in_gives_nothing_out():
    assert _merged_deltas([]) == []


@pytest.fixture(scope="module")
async def stack(make_stack):
    return await make_stack()


async def test_chunks_the_provider_sends_apart_reach_the_caller_apart_over_grpc_and_http(stack):
    secret, _ = await stack.create_key()
    model = await stack.upsert_model([{"provider": "provider_a"}])
    stack.providers["provider_a"].control(inter_token_ms=60, completion_tokens=5)
    try:
        deltas, text = [], ""
        async for msg in stack.inference.StreamChatCompletion(
            stream_request(model), metadata=bearer(secret), timeout=10
        ):
            if msg.HasField("delta"):
                deltas.append(msg.delta)
                text += msg.delta.content
            else:
                summary = msg.summary
        # 5 words, 60 ms apart: each is its own message (the role frame and the first word arrive
        # together; the finish reason arrives with the last word).
        assert len([d for d in deltas if d.content]) == 5
        assert deltas[-1].finish_reason == "stop"
        assert summary.usage.output_tokens == 5
        assert text.startswith("provider_a ")

        chunks = []
        client = stack.openai(secret)
        events = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in events:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks.append(chunk.choices[0].delta.content)
        assert len(chunks) == 5
        assert "".join(chunks) == text
    finally:
        stack.reset_providers()
