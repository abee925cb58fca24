"""Webhook rules: which URLs an endpoint may have, when a failed delivery is retried, and the exact
bytes of an alert's body.

1. An endpoint URL is http or https, names a host, is at most 2,048 printable characters, carries no
   user name or password (a credential in a URL ends up in logs) and no fragment. With an allow-list
   (BILLING_WEBHOOK_ALLOWED_HOSTS: `host`, `host:port` or `*.domain` patterns, the syntax of the
   gateway's GATEWAY_UPSTREAM_ALLOWED_HOSTS) its host must match one pattern; the delivery loop checks
   again before every POST, so narrowing the list stops deliveries to hosts it no longer names.
2. Attempt n (1-based) that fails is retried after base x 2^(n-1) seconds, at most `cap` seconds;
   after `max_attempts` attempts the delivery is failed. With the defaults (1 s, 10 min, 12) the waits
   are 1, 2, 4, ... 512, 600 s: about 27 minutes from the first attempt to the last.
3. The body is the alert as compact JSON (UTF-8, keys in the fixed order of ALERT_FIELDS, every key
   always present, amounts as exact decimal strings, times RFC 3339 UTC with a Z), so the bytes of an
   alert are the same on every attempt and every replica.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from common.errors import InvalidArgument

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
SECRET_HINT_CHARS = 8

_HOST_PATTERN = re.compile(
    r"(\*\.)?[a-z0-9]([a-z0-9.-]{0,252})?(:[0-9]{1,5})?"  # name or IPv4, optional port
    r"|\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?"  # [IPv6], optional port
)

# The alert kinds as the contract's AlertKind names them (the JSON says what ListAlerts says).
ALERT_KIND_NAMES = {
    "spend_threshold": "ALERT_KIND_SPEND_THRESHOLD",
    "hard_cap_reached": "ALERT_KIND_HARD_CAP_REACHED",
    "negative_margin": "ALERT_KIND_NEGATIVE_MARGIN",
}

ALERT_FIELDS = (
    "id",
    "kind",
    "builder_id",
    "customer_id",
    "control_id",
    "threshold_percent",
    "amount",
    "limit",
    "charge_key",
    "period_start_time",
    "message",
    "create_time",
)


# ---- 1. URLs ------------------------------------------------------------------------------------------


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """A comma-separated allow-list; raises ValueError naming a pattern it cannot read."""
    out = []
    for raw in text.split(","):
        pattern = raw.strip().lower()
        if not pattern:
            continue
        if not _HOST_PATTERN.fullmatch(pattern):
            raise ValueError(f"{raw.strip()[:100]!r} is not a host, host:port or *.domain pattern")
        out.append(pattern)
    return tuple(out)


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    if pattern.startswith("["):
        name, _, rest = pattern.partition("]")
        return name + "]", int(rest[1:]) if rest else None
    name, sep, port = pattern.partition(":")
    return name, int(port) if sep else None


def host_allowed(host: str, port: int, allowed: tuple[str, ...]) -> bool:
    """Whether host:port matches a pattern of the allow-list; an empty list allows every host."""
    if not allowed:
        return True
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host  # urlsplit gives an IPv6 literal without brackets
    for pattern in allowed:
        name, want_port = _split_pattern(pattern)
        if want_port is not None and want_port != port:
            continue
        if name.startswith("*.") and shown.endswith(name[1:]) and len(shown) > len(name) - 1:
            return True
        if shown == name:
            return True
    return False


def check_url(url: str, allowed_hosts: tuple[str, ...], field: str = "url") -> str:
    """Rule 1: the URL as given, or InvalidArgument naming `field`."""
    if not url:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(url) > MAX_URL_LENGTH or not url.isprintable() or not url.isascii() or " " in url:
        raise InvalidArgument(
            f"{field} must be a URL of at most {MAX_URL_LENGTH:,} printable ASCII characters without "
            "spaces (percent-encode the rest)",
            field=field,
        )
    try:
        parsed = urlsplit(url)
        port = parsed.port
        host = parsed.hostname
    except ValueError:
        raise InvalidArgument(f"{field} is not a valid URL", field=field) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidArgument(f"{field} must be an http or https URL with a host", field=field)
    if parsed.username is not None or parsed.password is not None or "@" in parsed.netloc:
        raise InvalidArgument(f"{field} must not carry a user name or password", field=field)
    if parsed.fragment or "#" in url:
        raise InvalidArgument(f"{field} must not have a fragment", field=field)
    effective_port = port or (443 if parsed.scheme == "https" else 80)
    if not host_allowed(host, effective_port, allowed_hosts):
        raise InvalidArgument(
            f"{field} host {host}:{effective_port} is not in billing's webhook allow-list "
            "(BILLING_WEBHOOK_ALLOWED_HOSTS)",
            field=field,
        )
    return url


def secret_hint(secret: str) -> str:
    return secret[:SECRET_HINT_CHARS]


# ---- 2. retries ---------------------------------------------------------------------------------------


def retry_delay_seconds(attempt: int, base_seconds: float, cap_seconds: float) -> float:
    """Rule 2: the wait after failed attempt number `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # 2^(attempt-1) overflows nothing here: past ~64 doublings the cap has long applied.
    return min(cap_seconds, base_seconds * 2 ** min(attempt - 1, 64))


# ---- 3. the body ----------------------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_body(alert: Mapping[str, Any]) -> bytes:
    """Rule 3: the body posted for one alert (a row of the alerts table)."""
    currency = alert["currency_code"]
    payload = {
        "id": alert["id"],
        "kind": ALERT_KIND_NAMES.get(alert["kind"], "ALERT_KIND_UNSPECIFIED"),
        "builder_id": alert["builder_id"],
        "customer_id": alert["customer_id"],
        "control_id": alert["control_id"],
        "threshold_percent": alert["threshold_percent"],
        "amount": {"currency_code": currency, "amount": _amount(alert["amount"])},
        "limit": {"currency_code": currency, "amount": _amount(alert["limit_amount"])},
        "charge_key": alert["charge_key"],
        "period_start_time": _time(alert["period_start"]),
        "message": alert["message"],
        "create_time": _time(alert["create_time"]),
    }
    assert tuple(payload) == ALERT_FIELDS
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
