"""Gateway demo: a builder gets a key, its app talks to the gateway with the unmodified `openai` package,
one provider fails and the gateway fails over, and every attempt's usage lands in metering.

Called by scripts/suite.py demo with the suite's endpoints; drives only public APIs (admin gRPC, the
OpenAI-compatible HTTP front door, metering's gRPC, and the stand-in providers' /_control).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import aiohttp
import openai

from scripts.demo import operator_channel
from tollgate.gateway.v1 import admin_pb2, admin_pb2_grpc
from tollgate.metering.v1 import metering_pb2, metering_pb2_grpc
from tollgate.type.v1 import decimal_pb2

MESSAGES = [
    {"role": "system", "content": "You answer support tickets for Acme in one short paragraph."},
    {"role": "user", "content": "My invoice shows two charges for March, can you check?"},
]


async def run(endpoints: dict[str, str]) -> None:
    run_id = uuid.uuid4().hex[:6]
    builder = f"agency-{run_id}"
    admin_md = ()  # the channel carries the local operator's credential
    async with operator_channel(endpoints["gateway"]) as ch:
        admin = admin_pb2_grpc.GatewayAdminServiceStub(ch)
        # One public model on the two stand-in providers; demo_a is cheaper, so it goes first.
        for name, url in (("demo_a", endpoints["provider_a"]), ("demo_b", endpoints["provider_b"])):
            await admin.UpsertProvider(
                admin_pb2.UpsertProviderRequest(
                    request_id=f"demo-provider-{name}-{run_id}",
                    provider=admin_pb2.Provider(
                        name=name, base_url=f"{url}/v1", credential_env="TOLLGATE_PROVIDER_DEMO_KEY"
                    ),
                ),
                metadata=admin_md,
                timeout=5,
            )
        model = "demo-support-chat"
        offerings = [
            admin_pb2.Offering(
                id=name,
                provider=name,
                upstream_model="fake-chat",
                input_price_per_mtok=decimal_pb2.Decimal(value=i),
                output_price_per_mtok=decimal_pb2.Decimal(value=o),
                enabled=True,
            )
            for name, i, o in (("demo_a", "0.15", "0.60"), ("demo_b", "0.25", "1.00"))
        ]
        await admin.UpsertModel(
            admin_pb2.UpsertModelRequest(
                request_id=f"demo-model-{run_id}", model=admin_pb2.Model(name=model, offerings=offerings)
            ),
            metadata=admin_md,
            timeout=5,
        )
        created = await admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                request_id=f"demo-key-{run_id}",
                builder_id=builder,
                app_id="support-bot",
                customer_id="acme",
                display_name="Acme support bot",
                default_tags={"workspace": "acme-prod", "workflow": "tickets"},
            ),
            metadata=admin_md,
            timeout=5,
        )
    secret = created.secret
    print(f"1. created API key {created.api_key.id} (shown once: {secret[:8]}..., stored only as a hash)")
    print(
        f"   for builder {builder}, app support-bot, customer acme; model {model}: demo_a $0.15/$0.60, "
        "demo_b $0.25/$1.00 per million tokens"
    )

    client = openai.AsyncOpenAI(base_url=f"{endpoints['gateway_http']}/v1", api_key=secret, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model=model,
        messages=MESSAGES,
        extra_headers={"x-tollgate-request-id": f"demo-{run_id}-1", "x-tollgate-ticket-id": "T-1042"},
    )
    reply = raw.parse()
    print(f"2. unary via the openai package: {reply.choices[0].message.content!r}")
    print(
        f"   served by {raw.headers.get('x-tollgate-provider')}"
        f" (attempt {raw.headers.get('x-tollgate-attempt')}),"
        f" usage {reply.usage.prompt_tokens} in / {reply.usage.completion_tokens} out"
    )

    stream = await client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-tollgate-request-id": f"demo-{run_id}-2"},
    )
    text, usage, chunks = "", None, 0
    async for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    print(
        f"3. streaming: {chunks} chunks -> {text!r}; final usage chunk {usage.prompt_tokens} in / "
        f"{usage.completion_tokens} out"
    )

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{endpoints['provider_a']}/_control", json={"fail_next": 1, "error_kinds": ["503"]}
        ):
            pass
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, extra_headers={"x-tollgate-request-id": f"demo-{run_id}-3"}
        )
        async with http.get(f"{endpoints['provider_a']}/_stats") as r:
            stats_a = await r.json()
    print("4. provider_a told to answer 503 once; the gateway failed over before sending anything:")
    print(
        f"   served by {raw.headers.get('x-tollgate-provider')}"
        f" at attempt {raw.headers.get('x-tollgate-attempt')};"
        f" provider_a's own counters: {stats_a['by_outcome']}"
    )

    events = await _events(endpoints["metering"], builder, want=4)
    print(f"5. usage in metering for {builder} ({len(events)} events, one per upstream attempt):")
    total = Decimal(0)
    for e in sorted(events, key=lambda e: e.id):
        status = metering_pb2.EventStatus.Name(e.status).removeprefix("EVENT_STATUS_").lower()
        cost = Decimal(e.quantities.get("provider_cost", "0"))
        total += cost
        print(
            f"   {e.id:<22} {status:<9} {e.tags.get('provider', '?'):<7}"
            f" in={e.quantities.get('input_tokens')}"
            f" out={e.quantities.get('output_tokens')} provider_cost=${cost} tags=workspace:"
            f"{e.tags.get('workspace')},workflow:{e.tags.get('workflow')}"
        )
    print(f"   total provider cost ${total} (exact; the failed attempt costs the builder nothing)")


async def _events(address: str, builder: str, want: int) -> list[metering_pb2.UsageEvent]:
    deadline = time.monotonic() + 15
    async with operator_channel(address) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        while True:
            resp = await stub.ListEvents(
                metering_pb2.ListEventsRequest(builder_id=builder, page_size=100), timeout=5
            )
            if len(resp.events) >= want or time.monotonic() > deadline:
                return list(resp.events)
            await asyncio.sleep(0.2)
