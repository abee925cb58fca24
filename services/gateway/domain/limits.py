"""The limits of the gateway's gRPC requests, checked at the edge before anything else runs.

Stated once here and in the comments of protos/tollgate/gateway/v1/*.proto, and matching the columns
they end up in, so no input (NUL characters, huge strings, page tokens this service did not issue,
extreme numbers) reaches PostgreSQL as an error or comes back as INTERNAL. Text a caller sent is
quoted in an error only truncated (`shown`).

Rules (the chat request's own rules, and metering's for what is recorded, are in chat.py and
recording.py; the catalog's in catalog.py; a key's in keys.py):

- ids and names: at most their column's characters, no NUL (PostgreSQL text cannot hold one);
- admin request ids: 1 to 128 characters (the idempotency column), no NUL;
- API key ids: exactly what CreateApiKey issues, `key_` + 24 hex digits (any other is NOT_FOUND);
- model names in a request: at most 128 characters (the catalog's bound); provider names in
  preferences: at most 64, at most 32 of each list; stop sequences at most 256 characters;
  the end-user id at most 256; the chat's metadata at most 64 entries;
- page tokens: only the cursor shapes this service issues, with values of the right type and size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from common.errors import InvalidArgument, NotFound
from common.paging import decode_token

MAX_ID_LENGTH = 128  # builder, app, customer ids; admin request ids
MAX_MODEL_NAME_LENGTH = 128
MAX_PROVIDER_NAME_LENGTH = 64
MAX_PREFERENCE_ITEMS = 32
MAX_STOP_LENGTH = 256
MAX_USER_LENGTH = 256
MAX_METADATA_ENTRIES = 64
MAX_PAGE_TOKEN_LENGTH = 1024
_KEY_ID = re.compile(r"key_[0-9a-f]{24}")
_NOT_ISSUED = "page_token is not a token this service issued"


def shown(value: str, limit: int = 64) -> str:
    """A caller's text as quoted in an error: at most `limit` characters, NUL removed."""
    cut = value[:limit].replace("\x00", "")
    return cut + ("..." if len(value) > limit else "")


def check_text(value: str, field: str, max_length: int, *, required: bool = False) -> None:
    if required and not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is longer than {max_length} characters", field=field)
    if "\x00" in value:
        raise InvalidArgument(f"{field} contains a NUL character", field=field)


def check_request_id(value: str) -> None:
    check_text(value, "request_id", MAX_ID_LENGTH, required=True)


def check_api_key_id(value: str) -> None:
    """Required; an id of another shape cannot name a key, so it is NOT_FOUND like any unknown id
    (a builder learns nothing from the difference) and never reaches the database."""
    if not value:
        raise InvalidArgument("api_key_id is required", field="api_key_id")
    if not _KEY_ID.fullmatch(value):
        raise NotFound("no such API key", field="api_key_id")


def check_names(values: Iterable[str], field: str, max_items: int, max_length: int) -> None:
    items = list(values)
    if len(items) > max_items:
        raise InvalidArgument(f"{field} has more than {max_items} entries", field=field)
    for i, v in enumerate(items):
        check_text(v, f"{field}[{i}]", max_length)


def _cursor(token: str, shape: dict[str, type]) -> dict[str, Any] | None:
    """A decoded page token of exactly this shape (keys and value types), else INVALID_ARGUMENT."""
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    cursor = decode_token(token)
    if cursor is None:
        return None
    if set(cursor) != set(shape) or not all(isinstance(cursor[k], t) for k, t in shape.items()):
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    for v in cursor.values():
        if isinstance(v, str) and (len(v) > 256 or "\x00" in v):
            raise InvalidArgument(_NOT_ISSUED, field="page_token")
    return cursor


def name_cursor(token: str, key: str) -> str:
    """The model name a model list's page token resumes after ("" for the first page)."""
    cursor = _cursor(token, {key: str})
    return "" if cursor is None else cursor[key]


def key_cursor(token: str) -> tuple[datetime, str] | None:
    """(create_time, key id) an API key list's page token resumes after, None for the first page."""
    cursor = _cursor(token, {"t": str, "id": str})
    if cursor is None:
        return None
    try:
        t = datetime.fromisoformat(cursor["t"])
    except ValueError:
        raise InvalidArgument(_NOT_ISSUED, field="page_token") from None
    if t.tzinfo is None or not _KEY_ID.fullmatch(cursor["id"]):
        raise InvalidArgument(_NOT_ISSUED, field="page_token")
    return t, cursor["id"]
