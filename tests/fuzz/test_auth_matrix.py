"""The authorization matrix, generated from the contracts and the servicers' access tables.

Every RPC of every service (found from the descriptors, so a new one cannot be missed) is called with
requests drawn from its descriptor that name builder b1, as:

    no credential                 -> UNAUTHENTICATED
    a wrong credential            -> UNAUTHENTICATED  (garbage, a forged signature, an expired token, a key
                                     the services do not trust, an empty bearer; on the inference door a
                                     revoked, an unknown and a principal's token instead of an API key)
    another builder's credential  -> PERMISSION_DENIED (builder b2; also a service the rule does not name)
    the right credential          -> anything but UNAUTHENTICATED or PERMISSION_DENIED

"Right" comes from the RPC's rule in `<context>/api.py`: an operator-only RPC takes the operator, a
builder-scoped one builder b1 (the operator and every named service must pass too), the inference door
a gateway API key. The refused calls change nothing: every row of every table of the three databases is
the same before and after them (row counts and an md5 of each table's rows, read by SQL from the test).
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict

import asyncpg
import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common.auth import Issuer, new_private_key_pem
from tests.conftest import REPO, auth_metadata, token
from tests.conftest import test_credentials as credentials
from tests.fuzz.harness import (
    PENDING_RPCS,
    STARTABLE_CONTEXTS,
    Rpc,
    access_tables,
    discover_rpcs,
    discover_services,
    invoke,
    name_builder,
)
from tests.fuzz.strategies import fresh_request_ids, messages

# Nothing may write in the background while row counts are compared (conftest's suite reads this).
GATEWAY_RELAY = False
EXAMPLES = int(os.environ.get("TOLLGATE_AUTH_EXAMPLES", "3"))
ACCESS = access_tables(discover_services())
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
SERVICES = ("gateway", "billing", "payouts", "metering")
MATRIX_PATH = REPO / ".tollgate" / "auth-matrix.txt"
SEEN: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))


def _bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {value}"),)


def _forged(kind: str, name: str) -> str:
    """A well-formed token with the trusted key's id, signed by another key: a bad signature."""
    other = Issuer(new_private_key_pem())
    other.key_id = credentials().issuer().key_id
    return other.mint(kind, name)  # type: ignore[arg-type]


def _expired(kind: str, name: str) -> str:
    return credentials().issuer().mint(kind, name, ttl_seconds=-60)  # type: ignore[arg-type]


def _wrong_principal_credentials(kind: str, name: str) -> list[tuple[str, tuple]]:
    return [
        ("garbage", _bearer("not-a-token")),
        ("empty bearer", (("authorization", "Bearer "),)),
        ("basic scheme", (("authorization", f"Basic {token(kind, name)}"),)),
        ("bad signature", _bearer(_forged(kind, name))),
        ("expired", _bearer(_expired(kind, name))),
        ("untrusted key", _bearer(Issuer(new_private_key_pem()).mint(kind, name))),  # type: ignore[arg-type]
    ]


def matrix_row(rpc: Rpc, suite) -> dict[str, list[tuple[str, tuple]]]:
    """The callers of each column for `rpc`: {"none"|"wrong"|"other"|"right": [(label, metadata)]}."""
    rule = ACCESS[rpc.service.full_name][rpc.method.name]
    if rule.api_key:
        return {
            "none": [("no credential", ())],
            "wrong": [
                ("revoked API key", _bearer(suite.revoked_secret)),
                ("unknown API key", _bearer("tg_" + "A" * 43)),
                ("garbage", _bearer("not-a-key")),
                ("operator's token instead of a key", auth_metadata()),
            ],
            "other": [],  # an API key names its builder: there is no request field to name another
            "right": [("API key of b1", _bearer(suite.inference_secret))],
        }
    if rule.builders:
        right = [("builder b1", auth_metadata("builder", "b1")), ("operator", auth_metadata())]
        wrong_as = ("builder", "b1")
    elif rule.services:
        right = [(f"service {s}", auth_metadata("service", s)) for s in sorted(rule.services)]
        right.append(("operator", auth_metadata()))
        wrong_as = ("service", sorted(rule.services)[0])
    else:  # operator only
        right = [("operator", auth_metadata())]
        wrong_as = ("operator", "tests")
    right.extend(
        (f"service {s}", auth_metadata("service", s)) for s in sorted(rule.services) if rule.builders
    )
    other = []
    if rule.builder_fields or not rule.builders:
        # A builder that is not the one named (or, for an RPC builders may not call, any builder).
        other.append(("builder b2", auth_metadata("builder", "b2")))
    outsider = next(s for s in SERVICES if s not in rule.services)
    other.append((f"service {outsider} (not in the rule)", auth_metadata("service", outsider)))
    return {
        "none": [("no credential", ())],
        "wrong": _wrong_principal_credentials(*wrong_as),
        "other": other,
        "right": right,
    }


async def snapshot(database_urls: dict[str, str]) -> dict[str, tuple[int, str | None]]:
    """(row count, md5 of the rows) of every table of every service's database, one query per database."""
    out: dict[str, tuple[int, str | None]] = {}
    for ctx, url in sorted(database_urls.items()):
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            tables = await conn.fetch("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2")
            parts = [
                f"SELECT '{table}' AS name, count(*) AS n, "
                f'md5(string_agg(t::text, \'|\' ORDER BY t::text)) AS h FROM "{schema}"."{table}" t'
                for schema, table in tables
            ]
            for row in await conn.fetch(" UNION ALL ".join(parts)):
                out[f"{ctx}.{row['name']}"] = (row["n"], row["h"])
        finally:
            await conn.close()
    return out


def _diff(before: dict, after: dict) -> list[str]:
    keys = sorted(set(before) | set(after))
    return [f"{k}: {before.get(k)} -> {after.get(k)}" for k in keys if before.get(k) != after.get(k)]


def _params() -> list:
    params = []
    for rpc in discover_rpcs():
        marks = []
        if rpc.context not in STARTABLE_CONTEXTS:
            marks.append(pytest.mark.skip(reason=f"{rpc.context} has no fixture yet"))
        if rpc.id in PENDING_RPCS:
            marks.append(pytest.mark.skip(reason=f"{rpc.id} is published but not implemented yet"))
        params.append(pytest.param(rpc, id=rpc.id, marks=marks))
    return params


def test_every_rpc_has_an_access_rule() -> None:
    missing = [
        r.id
        for r in discover_rpcs()
        if r.context in STARTABLE_CONTEXTS and r.method.name not in ACCESS.get(r.service.full_name, {})
    ]
    assert not missing, f"RPCs without an access rule in their servicer module: {missing}"


@pytest.mark.parametrize("rpc", _params())
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(data=st.data())
async def test_only_the_right_caller_gets_past_authorization(suite, rpc: Rpc, data) -> None:
    target = suite.targets[rpc.service.full_name]
    rule = ACCESS[rpc.service.full_name][rpc.method.name]
    hints = dataclasses.replace(suite.hints, plausible_probability=1.0)
    request = data.draw(messages(rpc.method.input_type, hints), label="request")
    for path in rule.builder_fields:
        name_builder(request, path, "b1")
    row = matrix_row(rpc, suite)

    before = await snapshot(suite.database_urls)
    expected = {"none": grpc.StatusCode.UNAUTHENTICATED, "wrong": grpc.StatusCode.UNAUTHENTICATED}
    expected["other"] = grpc.StatusCode.PERMISSION_DENIED
    for column in ("none", "wrong", "other"):
        for label, metadata in row[column]:
            fresh_request_ids(request)
            outcome = await invoke(target, rpc, request, metadata)
            SEEN[rpc.id][column].add(outcome.code.name)
            assert outcome.code == expected[column], (
                f"{rpc.id} as {label}: {outcome.code.name} ({outcome.details[:200]}), "
                f"expected {expected[column].name}"
            )
    changed = _diff(before, await snapshot(suite.database_urls))
    assert not changed, f"refused calls to {rpc.id} changed: {changed}"

    for label, metadata in row["right"]:
        outcome = await invoke(target, rpc, fresh_request_ids(request), metadata)
        SEEN[rpc.id]["right"].add(outcome.code.name)
        assert outcome.code not in DENIED, f"{rpc.id} refused {label}: {outcome.code.name} {outcome.details}"


async def _undecodable_without_credential(suite, api_key_door: bool) -> list[str]:
    wrong = []
    for rpc in discover_rpcs():
        if rpc.context not in STARTABLE_CONTEXTS:
            continue
        if ACCESS[rpc.service.full_name][rpc.method.name].api_key != api_key_door:
            continue
        for label, metadata in (("no credential", ()), ("garbage credential", _bearer("not-a-token"))):
            outcome = await invoke(suite.targets[rpc.service.full_name], rpc, b"\xff", metadata)
            if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
                wrong.append(f"{rpc.id} ({label}): {outcome.code.name}")
    return wrong


async def test_a_body_that_does_not_decode_without_a_credential_is_unauthenticated(suite) -> None:
    """Who calls is decided before what is asked: no credential is UNAUTHENTICATED whatever the body."""
    wrong = await _undecodable_without_credential(suite, api_key_door=False)
    assert not wrong, f"{len(wrong)} calls with the body b'\\xff' were not UNAUTHENTICATED: {wrong[:6]}"


async def test_a_body_that_does_not_decode_without_an_api_key_is_unauthenticated(suite) -> None:
    wrong = await _undecodable_without_credential(suite, api_key_door=True)
    assert not wrong, f"{len(wrong)} calls with the body b'\\xff' were not UNAUTHENTICATED: {wrong[:6]}"


def test_write_the_matrix() -> None:
    """Writes what each column answered per RPC to .tollgate/auth-matrix.txt (for the report)."""
    if not SEEN:
        pytest.skip("no matrix run in this session")
    width = max(len(k) for k in SEEN) + 2
    lines = ["rpc".ljust(width) + "no credential".ljust(18) + "wrong".ljust(18) + "other".ljust(20) + "right"]
    for rpc_id in sorted(SEEN):
        cols = SEEN[rpc_id]
        cells = [",".join(sorted(cols.get(c, {"n/a"}))) for c in ("none", "wrong", "other", "right")]
        lines.append(
            rpc_id.ljust(width) + cells[0].ljust(18) + cells[1].ljust(18) + cells[2].ljust(20) + cells[3]
        )
    MATRIX_PATH.parent.mkdir(parents=True, exist_ok=True)
    MATRIX_PATH.write_text("\n".join(lines) + "\n")
