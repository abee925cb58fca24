"""The suite-wide proof harness: every RPC of every service, found from the generated descriptors, called
generically over a real channel, with per-RPC status counts and a table for `make fuzz`.

Services are discovered from every `tollgate/*/v1/*_pb2.py` module on the path, so an RPC (or a whole
service) added later is fuzzed and put in the authorization matrix without anyone editing this file;
a discovered service the fixtures do not know how to start fails the run instead of being skipped,
except payouts until `services/payouts` can be started.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf import message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

import tollgate

# Contexts whose server the suite fixture (conftest.py) starts; payouts joins when its service is in the tree.
# RPCs whose contract is published but whose handler has not landed yet (they answer UNIMPLEMENTED):
# the fuzz tests skip them, saying so. Each handler's change removes its RPCs from here; the list
# must be empty when the work that published them is done.
PENDING_RPCS: frozenset[str] = frozenset()

STARTABLE_CONTEXTS = frozenset(
    {"metering", "billing", "gateway"} | ({"payouts"} if importlib.util.find_spec("payouts") else set())
)

# Generous: a call the fuzzer makes is small work; running past this is a hang, which is a bug.
CALL_DEADLINE_SECONDS = 30.0
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


@dataclass(frozen=True)
class Rpc:
    service: _descriptor.ServiceDescriptor
    method: _descriptor.MethodDescriptor

    def __repr__(self) -> str:
        return self.id

    @property
    def id(self) -> str:
        return f"{self.service.name}.{self.method.name}"

    @property
    def path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def context(self) -> str:
        # tollgate.<context>.v1.XService -> <context>
        return self.service.full_name.split(".")[1]

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming

    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)


def discover_services() -> list[_descriptor.ServiceDescriptor]:
    """Every gRPC service declared in a generated tollgate module, in a stable order."""
    found: dict[str, _descriptor.ServiceDescriptor] = {}
    for root in tollgate.__path__:
        for ctx in sorted(p.name for p in Path(root).iterdir() if (p / "v1").is_dir()):
            package = f"tollgate.{ctx}.v1"
            try:
                pkg = importlib.import_module(package)
            except ImportError:
                continue
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.endswith("_pb2"):
                    continue
                module = importlib.import_module(f"{package}.{mod.name}")
                for svc in module.DESCRIPTOR.services_by_name.values():
                    found[svc.full_name] = svc
    return [found[k] for k in sorted(found)]


def discover_rpcs() -> list[Rpc]:
    return [Rpc(svc, m) for svc in discover_services() for m in svc.methods]


@dataclass
class Target:
    """Where one service listens and the metadata a valid caller sends (empty while no auth exists)."""

    address: str
    channel: grpc.aio.Channel
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Message | None = None
    messages: list[Message] = field(default_factory=list)


async def invoke(
    target: Target,
    rpc: Rpc,
    request: Message | bytes,
    metadata: Sequence[tuple[str, str]] | None = None,
    deadline: float = CALL_DEADLINE_SECONDS,
) -> Outcome:
    """Calls `rpc` with `request` (a message, or a body as raw bytes); a server stream is read to its end.
    Never raises for a status."""
    md = tuple(target.metadata if metadata is None else metadata)
    ser = (lambda body: body) if isinstance(request, bytes) else type(request).SerializeToString
    de = rpc.response_class().FromString
    if rpc.streaming:
        call = target.channel.unary_stream(rpc.path, request_serializer=ser, response_deserializer=de)(
            request, metadata=md, timeout=deadline
        )
        got: list[Message] = []
        try:
            async for item in call:
                got.append(item)
        except grpc.aio.AioRpcError as e:
            return Outcome(e.code(), e.details() or "", None, got)
        return Outcome(await call.code(), await call.details() or "", None, got)
    method = target.channel.unary_unary(rpc.path, request_serializer=ser, response_deserializer=de)
    try:
        response = await method(request, metadata=md, timeout=deadline)
    except grpc.aio.AioRpcError as e:
        return Outcome(e.code(), e.details() or "")
    return Outcome(grpc.StatusCode.OK, "", response)


async def health_status(channel: grpc.aio.Channel, service: str = "") -> str:
    """The standard health check's answer for `service` ("" = the whole server), by name."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    except grpc.aio.AioRpcError as e:
        return f"error {e.code().name}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


# ------------------------------------------------------------------------------------------- report

COUNTS: dict[str, Counter[str]] = defaultdict(Counter)
# The refusals' messages per RPC (first 100 characters), to see which check stops the fuzzer.
DETAILS: dict[str, Counter[str]] = defaultdict(Counter)


def record(rpc: Rpc, code: grpc.StatusCode, details: str = "", suffix: str = "") -> None:
    COUNTS[rpc.id + suffix][code.name] += 1
    if code != grpc.StatusCode.OK:
        DETAILS[rpc.id + suffix][f"{code.name}: {details[:100]}"] += 1


# Known bugs (by name) -> the calls that hit them: "<rpc> <code> <- <request>".
KNOWN_HITS: dict[str, list[str]] = defaultdict(list)


def known_hits_report(per_bug: int = 5) -> str:
    lines = []
    for name, hits in sorted(KNOWN_HITS.items()):
        by_rpc = Counter(h.split(" ", 1)[0] for h in hits)
        lines.append(f"{name}: {len(hits)} calls on {dict(by_rpc)}")
        lines.extend(f"  {h}" for h in hits[:per_bug])
    return "\n".join(lines)


def details_report(top: int = 5) -> str:
    lines = []
    for rpc_id in sorted(DETAILS):
        lines.append(rpc_id)
        lines.extend(f"  {n:5d}  {d!r}" for d, n in DETAILS[rpc_id].most_common(top))
    return "\n".join(lines)


def report_table(counts: dict[str, Counter[str]] | None = None) -> str:
    counts = COUNTS if counts is None else counts
    if not counts:
        return ""
    codes = sorted({c for per in counts.values() for c in per}, key=lambda c: (c != "OK", c))
    width = max(len(k) for k in counts) + 2
    head = "rpc".ljust(width) + "".join(c.rjust(max(len(c), 5) + 2) for c in codes) + "  total".rjust(8)
    lines = [head, "-" * len(head)]
    for rpc_id in sorted(counts):
        per = counts[rpc_id]
        row = rpc_id.ljust(width) + "".join(str(per.get(c, 0)).rjust(max(len(c), 5) + 2) for c in codes)
        lines.append(row + str(sum(per.values())).rjust(8))
    total = Counter()
    for per in counts.values():
        total.update(per)
    lines.append("-" * len(head))
    lines.append(
        "all".ljust(width)
        + "".join(str(total.get(c, 0)).rjust(max(len(c), 5) + 2) for c in codes)
        + str(sum(total.values())).rjust(8)
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- access


def access_tables(services: Sequence[_descriptor.ServiceDescriptor]) -> dict[str, Mapping[str, Any]]:
    """Each service's access table (service full name -> {method: common.auth.Access}), read from its
    servicer module `<context>/api.py`: the module-level mapping whose keys are exactly the service's
    RPC names (metering and billing call it ACCESS, the gateway has INFERENCE_ACCESS and ADMIN_ACCESS)."""
    from common.auth import Access

    found: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        context = svc.full_name.split(".")[1]
        try:
            api = importlib.import_module(f"{context}.api")
        except ImportError:
            continue
        methods = {m.name for m in svc.methods}
        for value in vars(api).values():
            if (
                isinstance(value, Mapping)
                and set(value) == methods
                and all(isinstance(v, Access) for v in value.values())
            ):
                found[svc.full_name] = value
    return found


def name_builder(request: Message, path: str, builder_id: str) -> None:
    """Sets the builder field `path` ("builder_id", "customer.builder_id", "events[].builder_id") to
    `builder_id`, adding one element to an empty repeated field so the request does name a builder."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        items = getattr(request, head[:-2])
        if not len(items):
            items.add()
        for item in items:
            name_builder(item, rest, builder_id)
    elif rest:
        name_builder(getattr(request, head), rest, builder_id)
    else:
        setattr(request, head, builder_id)
