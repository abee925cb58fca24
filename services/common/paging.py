"""Opaque page tokens: a URL-safe base64 of a small JSON cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if requested < 0 or requested > maximum:
        raise InvalidArgument(f"page_size must be between 0 and {maximum}", field="page_size")
    return requested or default


def encode_token(cursor: dict[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        cursor = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token is not a token this service issued", field="page_token") from None
    if not isinstance(cursor, dict):
        raise InvalidArgument("page_token is not a token this service issued", field="page_token")
    return cursor
