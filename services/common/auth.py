"""Who is calling, and what it may touch: credentials, principals and the access rule of every RPC.

Credentials are Ed25519-signed JSON Web Tokens (PyJWT over `cryptography`), sent as gRPC metadata
`authorization: Bearer <token>`. A service holds only the *public* keys that verify them (its trust file),
so no secret that could mint a credential is stored by any service: the signing key stays with whoever
issues credentials (the operator; `make run` keeps it under .tollgate/credentials). Verification is a
signature check in OpenSSL, which does not depend on where a forged token differs.

Principals (DESIGN.md, "Callers and credentials"):
- operator: every RPC, every builder;
- builder: the RPCs its access rule opens to builders, for its own builder only. The builder comes from the
  credential: an empty builder field in the request is filled in with it, another builder is refused;
- service: the few RPCs that name it (gateway -> metering ingest, billing -> metering queries,
  payouts -> billing's earnings feed), for any builder.

Refusals: a missing, malformed, forged, expired or revoked credential is UNAUTHENTICATED, all with the same
message; a good one outside its scope is PERMISSION_DENIED, decided from the request alone, before any
lookup, so it never says whether the thing asked for exists.

Rotation without downtime: the trust file lists several keys (by key id) and the ids of revoked tokens;
services re-read it when it changes. Add a new key, re-issue tokens with it, retire the old key: at every
step both the old and the new credentials are valid. A caller's token file is re-read when it changes too.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from common.errors import PermissionDenied, Unauthenticated

Kind = Literal["operator", "builder", "service"]
KINDS: tuple[str, ...] = ("operator", "builder", "service")
ISSUER = "tollgate"
AUDIENCE = "tollgate"
ALGORITHM = "EdDSA"
# Tokens are a few hundred bytes; anything much longer is refused before it is parsed.
MAX_TOKEN_BYTES = 4096
# A subject name (builder id, service name, operator name): the same limits as builder ids elsewhere.
MAX_NAME_LENGTH = 128

MISSING = "a credential is required: send `authorization: Bearer <token>`"
INVALID = "the credential is not valid"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    kind: Kind
    name: str
    token_id: str
    builder_id: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.name}"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "tollgate_principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being handled (set by the server interceptor before the handler runs)."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated(MISSING)
    return principal


def set_current_principal(principal: Principal | None) -> contextvars.Token:
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token) -> None:
    _current.reset(token)


def scope_builder(default: str = "") -> str:
    """The builder a request-id scope should carry: the caller's own for a builder, else `default`."""
    principal = _current.get()
    if principal is not None and principal.builder_id:
        return principal.builder_id
    return default


# ---- access rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Who may call one RPC. Operators may call every RPC; the rest is opened here.

    builder_fields: request paths naming the builder the call acts for ("builder_id",
      "customer.builder_id", "events[].builder_id"). When any is given, builder credentials may call the RPC
      for their own builder: each named field must be empty (then it is filled in) or equal to theirs.
    builder_open: builder credentials may call an RPC that names no builder (reading the shared catalog).
    services: service credentials (by service name) that may call the RPC, for any builder.
    api_key: the RPC is not called with a principal credential at all: the servicer authenticates a
      gateway API key itself (the inference door).
    """

    builder_fields: tuple[str, ...] = ()
    builder_open: bool = False
    services: frozenset[str] = frozenset()
    api_key: bool = False

    @staticmethod
    def operator_only() -> Access:
        return Access()

    @staticmethod
    def for_builder(*fields: str, services: Iterable[str] = ()) -> Access:
        return Access(builder_fields=tuple(fields), services=frozenset(services))

    @staticmethod
    def for_services(*services: str) -> Access:
        return Access(services=frozenset(services))

    @staticmethod
    def gateway_api_key() -> Access:
        return Access(api_key=True)

    @property
    def builders(self) -> bool:
        return bool(self.builder_fields) or self.builder_open


AccessTable = Mapping[str, Access]


def check_access_table(service_full_name: str, table: AccessTable) -> None:
    """Every RPC of the service has exactly one rule: a new RPC without one stops the server at start-up."""
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    methods = {m.name for m in service.methods}
    missing = sorted(methods - set(table))
    unknown = sorted(set(table) - methods)
    if missing or unknown:
        raise RuntimeError(
            f"access table of {service_full_name} does not match its RPCs: "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    for name in methods:
        rule = table[name]
        request = service.methods_by_name[name].input_type
        for path in rule.builder_fields:
            _check_path(request, path, f"{service_full_name}/{name}")


def _check_path(descriptor: Any, path: str, where: str) -> None:
    for part in path.split("."):
        name = part.removesuffix("[]")
        field = descriptor.fields_by_name.get(name)
        if field is None:
            raise RuntimeError(f"access rule of {where} names {path!r}, which the request does not have")
        descriptor = field.message_type
    if descriptor is not None:
        raise RuntimeError(f"access rule of {where}: {path!r} is not a string field")


def authorize(principal: Principal, rule: Access, request: Message | None) -> None:
    """Decide from the credential and the request alone (no lookup): raise PermissionDenied or return.
    For a builder, empty builder fields of `request` are filled in with its builder."""
    if principal.kind == "operator":
        return
    if principal.kind == "service":
        if principal.name in rule.services:
            return
        raise PermissionDenied(f"service {principal.name!r} may not call this method")
    if not rule.builders:
        raise PermissionDenied("a builder credential may not call this method")
    if request is None:
        return
    for path in rule.builder_fields:
        _scope_field(request, path.split("."), principal.builder_id or "", path)


def _scope_field(message: Message, parts: list[str], builder_id: str, path: str) -> None:
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        for index, item in enumerate(getattr(message, head[:-2])):
            _scope_field(item, rest, builder_id, path.replace("[]", f"[{index}]", 1))
        return
    if rest:
        _scope_field(getattr(message, head), rest, builder_id, path)
        return
    value = getattr(message, head)
    if value == "":
        setattr(message, head, builder_id)
    elif value != builder_id:
        raise PermissionDenied(
            f"this credential acts for its own builder only; the request names another in {path}"
        )


# ---- verification -----------------------------------------------------------------------------------


def _key_id(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class TrustStore:
    """The public keys that verify credentials and the ids of revoked tokens, from one JSON file:
    {"keys": [<JWK>, ...], "revoked": ["<token id>", ...]}. Re-read when the file changes (checked at
    most once a second), so keys rotate and revocations apply without a restart."""

    def __init__(self, path: str | os.PathLike[str], *, check_interval: float = 1.0) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp: tuple[int, int] | None = None
        self.keys: dict[str, Any] = {}
        self.revoked: frozenset[str] = frozenset()
        self.generation = 0
        self._load()

    def _load(self) -> None:
        stat = self.path.stat()
        data = json.loads(self.path.read_text())
        keys: dict[str, Any] = {}
        for jwk in data.get("keys", []):
            key = jwt.PyJWK.from_dict(jwk, algorithm=ALGORITHM)
            keys[jwk.get("kid") or _key_id(key.key)] = key.key
        if not keys:
            raise ValueError(f"{self.path} lists no keys")
        self.keys = keys
        self.revoked = frozenset(data.get("revoked", []))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self.generation += 1

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._interval:
            return
        with self._lock:
            self._checked = now
            try:
                stat = self.path.stat()
            except OSError:
                return  # keep the keys we have: a file being replaced must not lock everyone out
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                try:
                    self._load()
                except (OSError, ValueError, jwt.PyJWTError):
                    return


class Verifier:
    """Turns a bearer token into a Principal, or raises Unauthenticated with one message for every
    kind of bad credential. Verified tokens are cached by their SHA-256 (never by the token itself) until
    they expire, the trust file changes, or they are revoked."""

    def __init__(self, trust: TrustStore, *, cache_size: int = 10_000) -> None:
        self.trust = trust
        self._cache: dict[bytes, tuple[Principal, float, int]] = {}
        self._cache_size = cache_size

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated(MISSING)
        self.trust.refresh()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            principal, expires, generation = hit
            if generation == self.trust.generation and time.time() < expires:
                if principal.token_id in self.trust.revoked:
                    raise Unauthenticated(INVALID)
                return principal
            self._cache.pop(digest, None)
        principal, expires = self._decode(token)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[digest] = (principal, expires, self.trust.generation)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(INVALID)
        try:
            header = jwt.get_unverified_header(token)
            key = self.trust.keys.get(header.get("kid", ""))
            if key is None:
                raise Unauthenticated(INVALID)
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "iat", "jti", "kind"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
            raise Unauthenticated(INVALID) from None
        kind, name, jti = claims.get("kind"), claims.get("name"), claims.get("jti")
        builder_id = claims.get("builder_id")
        if (
            kind not in KINDS
            or not isinstance(name, str)
            or not 0 < len(name) <= MAX_NAME_LENGTH
            or not isinstance(jti, str)
            or (kind == "builder" and (not isinstance(builder_id, str) or not builder_id))
            or jti in self.trust.revoked
        ):
            raise Unauthenticated(INVALID)
        expires = float(claims.get("exp", float("inf")))
        return Principal(
            kind=kind, name=name, token_id=jti, builder_id=builder_id if kind == "builder" else None
        ), expires


def bearer_header(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The raw `authorization` metadata value (for checks that parse it themselves), or None."""
    for key, value in metadata or ():
        if key == "authorization":
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of `authorization: Bearer <token>` metadata; None when absent or another scheme."""
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


# ---- issuing (the operator's side: make run, the tollgate command, tests) -----------------------------


class Issuer:
    """Mints credentials with an Ed25519 private key (PEM)."""

    def __init__(self, private_key_pem: bytes) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.key_id = _key_id(self._key.public_key())

    def mint(
        self,
        kind: Kind,
        name: str,
        *,
        builder_id: str | None = None,
        ttl_seconds: float | None = None,
        token_id: str | None = None,
    ) -> str:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if not 0 < len(name) <= MAX_NAME_LENGTH:
            raise ValueError(f"name must be 1 to {MAX_NAME_LENGTH} characters")
        if kind == "builder" and not builder_id:
            builder_id = name
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"{kind}:{name}",
            "kind": kind,
            "name": name,
            "iat": now,
            "jti": token_id or uuid.uuid4().hex,
        }
        if kind == "builder":
            claims["builder_id"] = builder_id
        if ttl_seconds is not None:
            claims["exp"] = now + int(ttl_seconds)
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self._key.public_key()))
        jwk["kid"] = self.key_id
        jwk["alg"] = ALGORITHM
        jwk["use"] = "sig"
        return jwk


def new_private_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
