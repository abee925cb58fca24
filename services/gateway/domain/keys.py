"""API keys: the secret's shape, its hash at rest, and what a key says about its caller."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from common.errors import InvalidArgument
from gateway.domain import recording

SECRET_PREFIX = "tg_"
# A test key's secret starts with this; a live key's never does (new_secret sees to it), so the secret
# alone tells a key's mode. The stored flag, not the prefix, is what the gateway acts on.
TEST_SECRET_PREFIX = "tg_test_"
# How much of the secret is stored and shown to recognise a key: the mode's prefix and 5 random characters.
_SHOWN_RANDOM = 5
_TAG_KEY = re.compile(r"^[a-z0-9_.-]{1,64}$")
MAX_TAGS = 16
# Rate limits are BIGINT columns; a bound far below that keeps bucket arithmetic exact in floats.
MAX_RATE = 10**12


@dataclass(frozen=True, slots=True)
class RateLimits:
    requests_per_minute: int = 0  # 0 = unlimited
    tokens_per_minute: int = 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    builder_id: str
    app_id: str
    customer_id: str
    display_name: str
    default_tags: dict[str, str] = field(default_factory=dict)
    rate_limits: RateLimits = RateLimits()
    secret_prefix: str = ""
    # Fixed at creation: no use case updates it and the database refuses to (migration 0003).
    test: bool = False
    create_time: datetime | None = None
    revoke_time: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


def new_secret(test: bool = False) -> str:
    """tg_ (live) or tg_test_ (test) + 32 random bytes, URL-safe base64 (43 characters): 256 bits, so
    a plain hash suffices. A live secret whose random part happens to start with "test_" is drawn
    again, so that the prefix never lies about the mode."""
    if test:
        return TEST_SECRET_PREFIX + secrets.token_urlsafe(32)
    while True:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        if not secret.startswith(TEST_SECRET_PREFIX):
            return secret


def is_test_secret(secret: str) -> bool:
    return secret.startswith(TEST_SECRET_PREFIX)


def shown_prefix(secret: str) -> str:
    """What is stored and listed to recognise a key: "tg_" + 5 (live) or "tg_test_" + 5 (test)."""
    mode_prefix = TEST_SECRET_PREFIX if is_test_secret(secret) else SECRET_PREFIX
    return secret[: len(mode_prefix) + _SHOWN_RANDOM]


def new_key_id() -> str:
    return "key_" + secrets.token_hex(12)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of the secret: what is stored and looked up. High-entropy secrets need no salt."""
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_tags(tags: dict[str, str], field_name: str) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"{field_name} has more than {MAX_TAGS} tags", field=field_name)
    for k, v in tags.items():
        if not _TAG_KEY.fullmatch(k):
            shown = k[:64]  # the caller's text, quoted in the error: bounded
            raise InvalidArgument(
                f"{field_name} key {shown!r} must be 1 to 64 characters of [a-z0-9_.-]",
                field=f"{field_name}.{shown}",
            )
        if not isinstance(v, str):
            raise InvalidArgument(f"{field_name}.{k} must be a string", field=f"{field_name}.{k}")
        reason, _ = recording.tag_problem(k, v)
        if reason:
            raise InvalidArgument(f"{field_name}.{k} {reason}", field=f"{field_name}.{k}")
    return dict(tags)


def validate_new_key(
    builder_id: str,
    app_id: str,
    customer_id: str,
    display_name: str,
    default_tags: dict[str, str],
    limits: RateLimits,
) -> None:
    for name, value in (("builder_id", builder_id), ("app_id", app_id), ("customer_id", customer_id)):
        if not value or recording.ref_problem(value):
            raise InvalidArgument(f"{name} is required: 1 to 128 characters, no NUL", field=name)
    if len(display_name) > 256 or recording.ref_problem(display_name[:128]) or "\x00" in display_name:
        raise InvalidArgument("display_name must be at most 256 characters, no NUL", field="display_name")
    validate_tags(default_tags, "default_tags")
    if not 0 <= limits.requests_per_minute <= MAX_RATE:
        raise InvalidArgument(
            f"rate_limits.requests_per_minute must be between 0 and {MAX_RATE}",
            field="rate_limits.requests_per_minute",
        )
    if not 0 <= limits.tokens_per_minute <= MAX_RATE:
        raise InvalidArgument(
            f"rate_limits.tokens_per_minute must be between 0 and {MAX_RATE}",
            field="rate_limits.tokens_per_minute",
        )
