"""A service's security settings: whom it trusts, the credential it calls others with, and TLS.

Read from <SERVICE>_* variables (DESIGN.md "Callers and credentials"):

    <SERVICE>_CREDENTIALS_DIR   the local credentials folder (default .tollgate/credentials), used for
                                whatever the variables below leave unset
    <SERVICE>_AUTH_TRUST_FILE   public keys that verify callers, and revoked token ids (default
                                <dir>/trust.json)
    <SERVICE>_AUTH_TOKEN        this service's own credential for the calls it makes, as a value
    <SERVICE>_AUTH_TOKEN_FILE   ... or as a file, re-read when it changes (default <dir>/<service>.token)
    <SERVICE>_TLS_CERT_FILE, <SERVICE>_TLS_KEY_FILE
                                serve gRPC over TLS with this certificate (and present it as the client
                                certificate on outgoing calls when the peer asks for one)
    <SERVICE>_TLS_CA_FILE       verify the servers it calls against this CA (turns TLS on for outgoing
                                calls); with TLS_REQUIRE_CLIENT_CERT=true, also the clients calling it
                                (mutual TLS)

Bound to a loopback address with no trust file, a service creates the local credentials folder (what
`make run` and `make demo` do before starting anything), so one command runs the suite with no set-up.
Bound beyond loopback, it refuses to start without a trust file and (when it calls others) a token.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from common.auth import Issuer, TrustStore, Verifier, new_private_key_pem
from common.settings import Env, SettingsError

DEFAULT_CREDENTIALS_DIR = ".tollgate/credentials"
SIGNING_KEY = "signing-key.pem"
TRUST_FILE = "trust.json"
OPERATOR_TOKEN = "operator.token"
# The services that call others, each with its own credential (DESIGN.md: gateway -> metering,
# billing -> metering, payouts -> billing and metering).
CALLING_SERVICES = ("gateway", "billing", "payouts")


def token_file_name(service: str) -> str:
    return f"{service}.token"


# ---- the local credentials folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class LocalCredentials:
    directory: Path

    @property
    def trust_file(self) -> Path:
        return self.directory / TRUST_FILE

    @property
    def signing_key(self) -> Path:
        return self.directory / SIGNING_KEY

    def token_file(self, who: str) -> Path:
        return self.directory / (OPERATOR_TOKEN if who == "operator" else token_file_name(who))

    def token(self, who: str) -> str:
        return self.token_file(who).read_text().strip()

    def issuer(self) -> Issuer:
        return Issuer(self.signing_key.read_bytes())


def _write_private(path: Path, data: str | bytes) -> None:
    """Write a secret readable by its owner only, atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def ensure_local_credentials(directory: str | os.PathLike[str] = DEFAULT_CREDENTIALS_DIR) -> LocalCredentials:
    """Create, once, a signing key, the trust file and the operator's and services' tokens under
    `directory` (mode 0700, files 0600). Safe to call from several processes at once (a file lock);
    an existing folder is left as it is."""
    local = LocalCredentials(Path(directory).resolve())
    local.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(local.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local.trust_file.exists() and local.signing_key.exists():
            return local
        pem = new_private_key_pem()
        _write_private(local.signing_key, pem)
        issuer = Issuer(pem)
        for service in CALLING_SERVICES:
            _write_private(local.token_file(service), issuer.mint("service", service) + "\n")
        _write_private(local.token_file("operator"), issuer.mint("operator", "local-operator") + "\n")
        _write_private(local.trust_file, json.dumps({"keys": [issuer.public_jwk()], "revoked": []}, indent=2))
    return local


def rotate_signing_key(directory: str | os.PathLike[str]) -> LocalCredentials:
    """Start a rotation: a new signing key is trusted beside the old one and the local tokens are
    re-issued with it. Credentials issued before stay valid until `retire_old_keys`."""
    local = LocalCredentials(Path(directory).resolve())
    with open(local.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        trust = json.loads(local.trust_file.read_text())
        pem = new_private_key_pem()
        issuer = Issuer(pem)
        trust["keys"].append(issuer.public_jwk())
        _write_private(local.trust_file, json.dumps(trust, indent=2))
        _write_private(local.signing_key, pem)
        for service in CALLING_SERVICES:
            _write_private(local.token_file(service), issuer.mint("service", service) + "\n")
        _write_private(local.token_file("operator"), issuer.mint("operator", "local-operator") + "\n")
    return local


def retire_old_keys(directory: str | os.PathLike[str]) -> None:
    """End a rotation: only the current signing key is trusted."""
    local = LocalCredentials(Path(directory).resolve())
    with open(local.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        trust = json.loads(local.trust_file.read_text())
        current = local.issuer().key_id
        trust["keys"] = [k for k in trust["keys"] if k.get("kid") == current]
        _write_private(local.trust_file, json.dumps(trust, indent=2))


def revoke_token(directory: str | os.PathLike[str], token_id: str) -> None:
    local = LocalCredentials(Path(directory).resolve())
    with open(local.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        trust = json.loads(local.trust_file.read_text())
        if token_id not in trust.setdefault("revoked", []):
            trust["revoked"].append(token_id)
        _write_private(local.trust_file, json.dumps(trust, indent=2))


# ---- the caller's side ------------------------------------------------------------------------------


class TokenSource:
    """A credential for outgoing calls, from a value or a file re-read when it changes."""

    def __init__(self, *, value: str | None = None, path: str | os.PathLike[str] | None = None) -> None:
        self._value = value.strip() if value else None
        self._path = Path(path) if path else None
        self._stamp: tuple[int, int] | None = None
        self._cached = ""

    def token(self) -> str:
        if self._value:
            return self._value
        if self._path is None:
            return ""
        try:
            stat = self._path.stat()
        except OSError:
            return self._cached
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._cached = self._path.read_text().strip()
            self._stamp = stamp
        return self._cached

    def metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.token()
        return (("authorization", f"Bearer {token}"),) if token else ()


def _with_token(details: grpc.aio.ClientCallDetails, source: TokenSource) -> grpc.aio.ClientCallDetails:
    """The call's metadata plus the channel's credential; a credential given for one call wins."""
    metadata = list(details.metadata or ())
    if any(k == "authorization" for k, _ in metadata):
        return details
    metadata.extend(source.metadata())
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _TokenUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[override]
        return await continuation(_with_token(client_call_details, self.source), request)


class _TokenUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[override]
        return await continuation(_with_token(client_call_details, self.source), request)


class _TokenStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[override]
        return await continuation(_with_token(client_call_details, self.source), request_iterator)


@dataclass(frozen=True)
class ClientTLS:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        cert = Path(self.cert_file).read_bytes() if self.cert_file else None
        key = Path(self.key_file).read_bytes() if self.key_file else None
        return grpc.ssl_channel_credentials(Path(self.ca_file).read_bytes(), key, cert)


def open_channel(
    address: str,
    *,
    token: TokenSource | None = None,
    tls: ClientTLS | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel whose every call carries `token`, over TLS when `tls` is given."""
    interceptors: list[Any] = []
    if token is not None:
        interceptors = [_TokenUnaryUnary(token), _TokenUnaryStream(token), _TokenStreamStream(token)]
    if tls is not None:
        return grpc.aio.secure_channel(
            address, tls.channel_credentials(), options=list(options), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)


# ---- the server's side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTLS:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None  # set: clients must present a certificate signed by it (mTLS)

    def server_credentials(self) -> grpc.ServerCredentials:
        pair = (Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes())
        ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def is_loopback(address: str) -> bool:
    """True for host:port addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SecuritySettings:
    service: str = ""
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    trust_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    tls_require_client_cert: bool = False

    @classmethod
    def from_env(cls, env: Env, service: str) -> SecuritySettings:
        settings = cls(
            service=service,
            credentials_dir=env.str("CREDENTIALS_DIR", DEFAULT_CREDENTIALS_DIR) or DEFAULT_CREDENTIALS_DIR,
            trust_file=env.str("AUTH_TRUST_FILE"),
            token=env.str("AUTH_TOKEN"),
            token_file=env.str("AUTH_TOKEN_FILE"),
            tls_cert_file=env.str("TLS_CERT_FILE"),
            tls_key_file=env.str("TLS_KEY_FILE"),
            tls_ca_file=env.str("TLS_CA_FILE"),
            tls_require_client_cert=env.bool("TLS_REQUIRE_CLIENT_CERT", False),
        )
        if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
            raise SettingsError(f"{env.prefix}_TLS_CERT_FILE and {env.prefix}_TLS_KEY_FILE go together")
        if settings.tls_require_client_cert and not (settings.tls_ca_file and settings.tls_cert_file):
            raise SettingsError(
                f"{env.prefix}_TLS_REQUIRE_CLIENT_CERT needs {env.prefix}_TLS_CA_FILE and a certificate"
            )
        return settings

    @classmethod
    def local(cls, service: str, directory: str | os.PathLike[str]) -> SecuritySettings:
        """Settings that use a local credentials folder as it is (tests, the demo)."""
        return cls(service=service, credentials_dir=str(directory))

    def _trust_path(self) -> Path:
        return Path(self.trust_file) if self.trust_file else Path(self.credentials_dir) / TRUST_FILE

    def verifier(self, bind_address: str) -> Verifier:
        """The verifier of callers. Creates the local credentials on loopback when nothing is configured;
        refuses (SettingsError) beyond loopback without a trust file."""
        path = self._trust_path()
        if not path.exists():
            if self.trust_file or not is_loopback(bind_address):
                prefix = self.service.upper() or "<SERVICE>"
                raise SettingsError(
                    f"{self.service or 'the service'} is bound to {bind_address} and has no trust file "
                    f"({path}): set {prefix}_AUTH_TRUST_FILE (see the README's 'Credentials')"
                )
            ensure_local_credentials(self.credentials_dir)
        try:
            return Verifier(TrustStore(path))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"cannot read the trust file {path}: {exc}") from None

    def token_source(self, bind_address: str) -> TokenSource:
        """This service's own credential for its outgoing calls."""
        if self.token:
            return TokenSource(value=self.token)
        path = (
            Path(self.token_file)
            if self.token_file
            else Path(self.credentials_dir) / token_file_name(self.service)
        )
        if not path.exists():
            if self.token_file or not is_loopback(bind_address):
                prefix = self.service.upper() or "<SERVICE>"
                raise SettingsError(
                    f"{self.service} calls other services and has no credential: set {prefix}_AUTH_TOKEN or "
                    f"{prefix}_AUTH_TOKEN_FILE (see the README's 'Credentials')"
                )
            ensure_local_credentials(self.credentials_dir)
        return TokenSource(path=path)

    def server_tls(self) -> ServerTLS | None:
        if not self.tls_cert_file or not self.tls_key_file:
            return None
        return ServerTLS(
            self.tls_cert_file,
            self.tls_key_file,
            self.tls_ca_file if self.tls_require_client_cert else None,
        )

    def client_tls(self) -> ClientTLS | None:
        if not self.tls_ca_file:
            return None
        return ClientTLS(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
