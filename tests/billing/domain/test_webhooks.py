"""Webhook rules (domain/webhooks.py): endpoint URLs, the retry schedule, the body's exact bytes."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.domain.webhooks import (
    alert_body,
    check_url,
    host_allowed,
    parse_allowed_hosts,
    retry_delay_seconds,
)
from common.errors import InvalidArgument


def test_the_default_schedule_doubles_from_one_second_and_stops_at_ten_minutes():
    waits = [retry_delay_seconds(n, 1.0, 600.0) for n in range(1, 12)]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    assert sum(waits) == 1623  # 27 min 3 s of waiting between the first and the twelfth attempt
    assert retry_delay_seconds(10_000, 1.0, 600.0) == 600


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/tollgate",
        "http://127.0.0.1:8080/alerts?team=ops",
        "https://[::1]:8443/x",
    ],
)
def test_http_and_https_urls_with_a_host_are_accepted(url):
    assert check_url(url, ()) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hooks.example.com/x",
        "file:///etc/passwd",
        "https://user@hooks.example.com/x",
        "https://user:secret@hooks.example.com/x",
        "https://hooks.example.com/x#frag",
        "https://hooks.example.com/\x00",
        "https://hooks.example.com/é",
        "https://hooks.example.com:70000/x",
        "https://" + "a" * 2048,
    ],
)
def test_other_urls_are_refused_naming_the_field(url):
    with pytest.raises(InvalidArgument) as err:
        check_url(url, ())
    assert err.value.field == "url"


def test_the_allow_list_matches_hosts_ports_and_subdomains():
    allowed = parse_allowed_hosts(" hooks.example.com, *.builder.dev ,127.0.0.1:9000")
    assert allowed == ("hooks.example.com", "*.builder.dev", "127.0.0.1:9000")
    assert host_allowed("hooks.example.com", 443, allowed)
    assert host_allowed("a.builder.dev", 443, allowed)
    assert not host_allowed("builder.dev", 443, allowed)
    assert host_allowed("127.0.0.1", 9000, allowed)
    assert not host_allowed("127.0.0.1", 9001, allowed)
    assert not host_allowed("evil.example.com", 443, allowed)
    with pytest.raises(InvalidArgument, match="allow-list"):
        check_url("https://evil.example.com/x", allowed)
    with pytest.raises(ValueError):
        parse_allowed_hosts("https://hooks.example.com")


def test_the_body_is_the_alert_in_a_fixed_key_order_with_exact_amounts():
    alert = {
        "id": "alt_1",
        "builder_id": "b1",
        "customer_id": "c1",
        "kind": "negative_margin",
        "control_id": "",
        "threshold_percent": 0,
        "charge_key": "tokens",
        "period_start": datetime(2026, 11, 1, tzinfo=UTC),
        "currency_code": "EUR",
        "amount": Decimal("0.100000000"),
        "limit_amount": Decimal("0.123456789"),
        "message": "Line tokens is priced below its cost — check the markup.",
        "create_time": datetime(2026, 12, 1, 9, 30, 0, 250000, tzinfo=UTC),
    }
    assert (
        alert_body(alert)
        == (
            '{"id":"alt_1","kind":"ALERT_KIND_NEGATIVE_MARGIN","builder_id":"b1","customer_id":"c1",'
            '"control_id":"","threshold_percent":0,"amount":{"currency_code":"EUR","amount":"0.1"},'
            '"limit":{"currency_code":"EUR","amount":"0.123456789"},"charge_key":"tokens",'
            '"period_start_time":"2026-11-01T00:00:00Z",'
            '"message":"Line tokens is priced below its cost — check the markup.",'
            '"create_time":"2026-12-01T09:30:00.250000Z"}'
        ).encode()
    )
