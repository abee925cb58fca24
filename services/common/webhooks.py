"""Signed webhooks: the signature a sender puts on each POST and the check a receiver makes.

The header (Stripe's scheme, which receivers already know how to read):

    Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is inside the signed text, so a captured request cannot be replayed with a fresh `t`; a
receiver refuses a `t` more than `tolerance_seconds` from its own clock, which bounds how long a
captured request can be replayed at all (deduplicating by Tollgate-Alert-Id closes the rest). A header
may carry several `v1=` entries (a sender signing with an old and a new secret during a rotation); one
match is enough. Unknown schemes (`v0=`, `v2=`) are ignored, so the format can grow.

This module has no dependencies beyond the standard library: a receiver may copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Tollgate-Signature"
ALERT_ID_HEADER = "Tollgate-Alert-Id"
DEFAULT_TOLERANCE_SECONDS = 300
# A header is a few signatures long; anything far longer is not ours and is refused before parsing.
_MAX_HEADER_CHARS = 4096


class SignatureError(ValueError):
    """The request is not signed by the holder of the secret within the tolerance: answer 400."""


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Tollgate-Signature header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={int(timestamp)},v1={_digest(secret, body, int(timestamp))}"


def _parse(header: str) -> tuple[int, list[str]]:
    if not header:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing")
    if len(header) > _MAX_HEADER_CHARS:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"the {SIGNATURE_HEADER} header is garbled: expected key=value pairs")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                raise SignatureError(f"the {SIGNATURE_HEADER} header has a bad timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise SignatureError(f"the {SIGNATURE_HEADER} header has no timestamp (t=)")
    if not signatures:
        raise SignatureError(f"the {SIGNATURE_HEADER} header has no v1 signature")
    return timestamp, signatures


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Return if `header` signs `body` with `secret` at a time within `tolerance_seconds` of `now`
    (default: this machine's clock); raise SignatureError saying why not. `body` must be the raw bytes
    received, before any JSON parsing (re-encoding changes them)."""
    timestamp, signatures = _parse(header or "")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"the signature's timestamp is {int(current - timestamp)} s from now, outside the "
            f"{int(tolerance_seconds)} s tolerance"
        )
    expected = _digest(secret, body, timestamp)
    # Compare with every entry, in constant time, without stopping at the first match.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii", "replace"))
    if not matched:
        raise SignatureError("no signature matches the body and the secret")
