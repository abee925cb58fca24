"""common.auth and common.security: who may call, proven on the credential rules and on a real server.

Pure checks first (verifying and scoping credentials, rotation), then a real metering server on loopback
(refusals by kind of caller, a builder's request filled in with its own builder, health open to all), then
TLS and mutual TLS with certificates made here.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import errors
from common.auth import INVALID, MISSING, Access, Principal, TrustStore, Verifier, authorize
from common.security import (
    ClientTLS,
    SecuritySettings,
    TokenSource,
    ensure_local_credentials,
    is_loopback,
    retire_old_keys,
    revoke_token,
    rotate_signing_key,
)
from common.settings import Env, SettingsError
from tests.conftest import auth_channel, security, token
from tollgate.metering.v1 import metering_pb2 as pb
from tollgate.metering.v1 import metering_pb2_grpc

# ---- verifying credentials -----------------------------------------------------------------------


@pytest.fixture
def local(tmp_path):
    creds = ensure_local_credentials(tmp_path / "creds")
    return creds, Verifier(TrustStore(creds.trust_file, check_interval=0))


def test_local_credentials_verify_as_operator_and_services(local):
    creds, verifier = local
    assert verifier.verify(creds.token("operator")).kind == "operator"
    for service in ("gateway", "billing", "payouts"):
        principal = verifier.verify(creds.token(service))
        assert (principal.kind, principal.name) == ("service", service)


def test_local_credentials_are_private_files_and_hold_no_secret_in_the_trust_file(local):
    creds, _ = local
    assert creds.directory.stat().st_mode & 0o077 == 0
    for path in [creds.signing_key, creds.trust_file, creds.token_file("operator")]:
        assert path.stat().st_mode & 0o077 == 0, path
    trust = json.loads(creds.trust_file.read_text())
    assert set(trust["keys"][0]) >= {"kty", "crv", "x", "kid"}
    assert "d" not in trust["keys"][0], "the trust file must hold public keys only"


def test_a_builder_credential_names_its_builder(local):
    creds, verifier = local
    principal = verifier.verify(creds.issuer().mint("builder", "acme"))
    assert principal == Principal(kind="builder", name="acme", token_id=principal.token_id, builder_id="acme")


def test_every_bad_credential_gets_the_same_unauthenticated_message(local, tmp_path):
    creds, verifier = local
    stranger = ensure_local_credentials(tmp_path / "other").issuer()
    good = creds.token("operator")
    header, payload, signature = good.split(".")
    private = serialization.load_pem_private_key(creds.signing_key.read_bytes(), None)
    now = int(time.time())
    claims = {"iss": "tollgate", "aud": "tollgate", "kind": "operator", "name": "x", "iat": now, "jti": "j"}
    kid = {"kid": creds.issuer().key_id}
    bad = {
        "garbage": "not-a-token",
        "signed by another key": stranger.mint("operator", "mallory"),
        "tampered payload": f"{header}.{payload[:-2]}AA.{signature}",
        "expired": creds.issuer().mint("operator", "ops", ttl_seconds=-10),
        "alg none": jwt.encode(claims, None, algorithm="none", headers=kid),
        "wrong audience": jwt.encode({**claims, "aud": "else", "sub": "o"}, private, "EdDSA", headers=kid),
        "unknown kind": jwt.encode({**claims, "kind": "god", "sub": "o"}, private, "EdDSA", headers=kid),
        "oversized": good + "A" * 5000,
        "nul": good[:10] + "\x00" + good[10:],
    }
    messages = {}
    for name, candidate in bad.items():
        with pytest.raises(errors.Unauthenticated) as caught:
            verifier.verify(candidate)
        messages[name] = caught.value.message
    assert set(messages.values()) == {INVALID}, messages
    with pytest.raises(errors.Unauthenticated) as caught:
        verifier.verify(None)
    assert caught.value.message == MISSING


def test_a_revoked_token_is_refused_at_once_even_after_it_was_accepted(local):
    creds, verifier = local
    builder = creds.issuer().mint("builder", "acme", token_id="tok-1")
    assert verifier.verify(builder).builder_id == "acme"
    revoke_token(creds.directory, "tok-1")
    with pytest.raises(errors.Unauthenticated):
        verifier.verify(builder)
    assert verifier.verify(creds.issuer().mint("builder", "acme")).builder_id == "acme"


def test_signing_key_rotation_keeps_old_and_new_credentials_valid_until_the_old_key_is_retired(local):
    creds, verifier = local
    old_operator = creds.token("operator")
    rotate_signing_key(creds.directory)
    new_operator = creds.token("operator")
    assert new_operator != old_operator
    assert verifier.verify(old_operator).kind == "operator"  # both valid at once, no restart
    assert verifier.verify(new_operator).kind == "operator"
    retire_old_keys(creds.directory)
    with pytest.raises(errors.Unauthenticated):
        verifier.verify(old_operator)
    assert verifier.verify(new_operator).kind == "operator"


def test_a_token_file_is_re_read_when_it_changes(tmp_path):
    path = tmp_path / "svc.token"
    path.write_text("first\n")
    source = TokenSource(path=path)
    assert source.metadata() == (("authorization", "Bearer first"),)
    path.write_text("second-and-longer\n")
    assert source.token() == "second-and-longer"


# ---- scoping -------------------------------------------------------------------------------------


def test_a_builder_request_with_no_builder_is_filled_in_with_its_own():
    acme = Principal("builder", "acme", "t", builder_id="acme")
    request = pb.IngestEventsRequest(events=[pb.UsageEvent(id="1"), pb.UsageEvent(builder_id="acme")])
    authorize(acme, Access.for_builder("events[].builder_id"), request)
    assert [e.builder_id for e in request.events] == ["acme", "acme"]


def test_a_builder_naming_another_builder_anywhere_is_denied_naming_the_field():
    acme = Principal("builder", "acme", "t", builder_id="acme")
    request = pb.IngestEventsRequest(
        events=[pb.UsageEvent(builder_id="acme"), pb.UsageEvent(builder_id="zeta")]
    )
    with pytest.raises(errors.PermissionDenied) as caught:
        authorize(acme, Access.for_builder("events[].builder_id"), request)
    assert "events[1].builder_id" in caught.value.message
    assert "zeta" not in caught.value.message


def test_operator_only_and_service_rules():
    operator = Principal("operator", "ops", "t")
    billing = Principal("service", "billing", "t")
    acme = Principal("builder", "acme", "t", builder_id="acme")
    rule = Access.for_builder("builder_id", services=("billing",))
    authorize(operator, Access.operator_only(), pb.QueryUsageRequest())
    authorize(billing, rule, pb.QueryUsageRequest(builder_id="anyone"))
    for who, access in [(acme, Access.operator_only()), (billing, Access.for_builder("builder_id"))]:
        with pytest.raises(errors.PermissionDenied):
            authorize(who, access, pb.QueryUsageRequest(builder_id="acme"))


# ---- on a real server ----------------------------------------------------------------------------


async def _code(coro) -> grpc.StatusCode:
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_metering_refuses_callers_by_kind_and_scope(metering_address):
    builder = f"b-{uuid.uuid4().hex[:8]}"
    meter = pb.Meter(key="docs", event_types=["document.processed"], aggregation=pb.AGGREGATION_COUNT)
    async with auth_channel(metering_address, credential=token("builder", builder)) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        created = await stub.CreateMeter(pb.CreateMeterRequest(request_id="m1", meter=meter), timeout=5)
        assert created.meter.builder_id == builder  # filled in from the credential
        listed = await stub.ListMeters(pb.ListMetersRequest(), timeout=5)
        assert [m.key for m in listed.meters] == ["docs"]
        other = await _code(stub.ListMeters(pb.ListMetersRequest(builder_id="someone-else"), timeout=5))
        assert other == grpc.StatusCode.PERMISSION_DENIED
    async with auth_channel(metering_address, credential=token("service", "billing")) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        read = await stub.ListMeters(pb.ListMetersRequest(builder_id=builder), timeout=5)
        assert [m.key for m in read.meters] == ["docs"]
        ingest = await _code(stub.IngestEvents(pb.IngestEventsRequest(request_id="r"), timeout=5))
        assert ingest == grpc.StatusCode.PERMISSION_DENIED
    async with grpc.aio.insecure_channel(metering_address) as ch:
        stub = metering_pb2_grpc.MeteringServiceStub(ch)
        bare = await _code(stub.ListMeters(pb.ListMetersRequest(builder_id=builder), timeout=5))
        assert bare == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # the one open RPC


# ---- settings ------------------------------------------------------------------------------------


def test_loopback_addresses():
    assert all(is_loopback(a) for a in ["127.0.0.1:1", "[::1]:2", "localhost:3", "127.9.9.9:4"])
    assert not any(is_loopback(a) for a in ["0.0.0.0:1", "[::]:2", "10.0.0.5:3", "metering:50051"])


def test_a_service_bound_beyond_loopback_refuses_to_start_without_credentials(tmp_path):
    settings = SecuritySettings.from_env(
        Env("METERING", {"METERING_CREDENTIALS_DIR": str(tmp_path)}), "metering"
    )
    with pytest.raises(SettingsError, match="METERING_AUTH_TRUST_FILE"):
        settings.verifier("0.0.0.0:50051")
    with pytest.raises(SettingsError, match="BILLING_AUTH_TOKEN"):
        SecuritySettings.local("billing", tmp_path).token_source("0.0.0.0:50053")
    assert not (tmp_path / "trust.json").exists()


def test_on_loopback_the_local_credentials_are_created_once(tmp_path):
    settings = SecuritySettings.local("billing", tmp_path / "state")
    verifier = settings.verifier("127.0.0.1:50053")
    own = settings.token_source("127.0.0.1:50053").token()
    assert verifier.verify(own).name == "billing"
    assert SecuritySettings.local("metering", tmp_path / "state").verifier("127.0.0.1:1").verify(own)


# ---- TLS -----------------------------------------------------------------------------------------


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, sans=()) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(folder: Path) -> dict[str, str]:
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollgate test CA")])
    ca = _cert("tollgate test CA", ca_key, ca_name, ca_key, ca=True)
    out = {"ca": folder / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(pem))
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, ca_key, ca_name, key, ca=False, sans=("localhost",))
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(pem))
        (folder / f"{name}-key.pem").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        out[name], out[f"{name}-key"] = folder / f"{name}.pem", folder / f"{name}-key.pem"
    return {k: str(v) for k, v in out.items()}


async def test_metering_over_mutual_tls_refuses_a_client_without_a_certificate(make_database, tmp_path):
    from dataclasses import replace

    from metering.app import start
    from metering.config import Settings
    from tests.conftest import migrated_database

    pki = _write_pki(tmp_path)
    tls = replace(
        security("metering"),
        tls_cert_file=pki["server"],
        tls_key_file=pki["server-key"],
        tls_ca_file=pki["ca"],
        tls_require_client_cert=True,
    )
    url = await migrated_database(make_database, "metering")
    running = await start(
        Settings(database_url=url, grpc_address="localhost:0", metrics_port=None, security=tls)
    )
    target = f"localhost:{running.port}"
    try:
        operator = TokenSource(value=token())
        from common.security import open_channel

        mutual = ClientTLS(pki["ca"], pki["client"], pki["client-key"])
        async with open_channel(target, token=operator, tls=mutual) as ch:
            listed = await metering_pb2_grpc.MeteringServiceStub(ch).ListMeters(
                pb.ListMetersRequest(builder_id="b"), timeout=5
            )
            assert list(listed.meters) == []
        async with open_channel(target, token=operator, tls=ClientTLS(pki["ca"])) as ch:
            code = await _code(
                metering_pb2_grpc.MeteringServiceStub(ch).ListMeters(
                    pb.ListMetersRequest(builder_id="b"), timeout=3
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no client certificate
        async with grpc.aio.insecure_channel(target) as ch:
            code = await _code(
                metering_pb2_grpc.MeteringServiceStub(ch).ListMeters(
                    pb.ListMetersRequest(builder_id="b"), timeout=3
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE  # plaintext is not served at all
    finally:
        await running.stop(0)


def test_tls_settings_go_together():
    with pytest.raises(SettingsError, match="TLS_KEY_FILE"):
        SecuritySettings.from_env(Env("BILLING", {"BILLING_TLS_CERT_FILE": "x.pem"}), "billing")
    with pytest.raises(SettingsError, match="TLS_CA_FILE"):
        SecuritySettings.from_env(
            Env(
                "BILLING",
                {
                    "BILLING_TLS_CERT_FILE": "a",
                    "BILLING_TLS_KEY_FILE": "b",
                    "BILLING_TLS_REQUIRE_CLIENT_CERT": "1",
                },
            ),
            "billing",
        )


def test_issuer_refuses_an_unknown_kind_or_an_empty_name(tmp_path):
    issuer = ensure_local_credentials(tmp_path).issuer()
    with pytest.raises(ValueError):
        issuer.mint("root", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        issuer.mint("operator", "")


# ---- the operator's commands ----------------------------------------------------------------------


def test_the_credentials_command_mints_a_builder_credential_services_accept(tmp_path, capsys):
    from common.credentials import main

    folder = tmp_path / "creds"
    assert main(["init", str(folder)]) == 0
    assert main(["mint", str(folder), "builder", "acme", "--days", "30"]) == 0
    minted = capsys.readouterr().out.strip().splitlines()[-1]
    verifier = Verifier(TrustStore(folder / "trust.json", check_interval=0))
    principal = verifier.verify(minted)
    assert (principal.kind, principal.builder_id) == ("builder", "acme")
    assert main(["revoke", str(folder), principal.token_id]) == 0
    with pytest.raises(errors.Unauthenticated):
        verifier.verify(minted)


async def test_the_container_health_probe_answers_without_a_credential(metering_address):
    from common.healthcheck import probe

    assert await probe("metering", metering_address) is True
    assert await probe("metering", "127.0.0.1:1", wait_seconds=0.5) is False


@pytest.mark.parametrize("service", ["metering", "billing", "gateway"])
def test_a_service_process_bound_beyond_loopback_without_credentials_exits_naming_it(service, tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("METERING_", "BILLING_", "GATEWAY_"))},
        f"{service.upper()}_GRPC_ADDRESS": "0.0.0.0:0",
        f"{service.upper()}_CREDENTIALS_DIR": str(tmp_path / "none"),
        f"{service.upper()}_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/unused",
    }
    done = subprocess.run(
        [sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2
    assert f"{service.upper()}_AUTH_TRUST_FILE" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "none").exists(), "nothing is generated for a service bound beyond loopback"
