"""Text rules shared by the domain and the API edge: how a caller's value is quoted in an error."""

from __future__ import annotations

import re

MAX_QUOTE_CHARS = 40
# C0 controls and DEL: never in an id, a key or a name (PostgreSQL text cannot hold NUL at all).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(value: object, limit: int = MAX_QUOTE_CHARS) -> str:
    """A caller's value for an error message: repr'd, and cut to `limit` characters with '...'."""
    text = str(value)
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)
