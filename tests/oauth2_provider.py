"""A test identity platform on 127.0.0.1: an OAuth2 token endpoint and an introspection endpoint.

Register the plugin with ``pytest_plugins``. Fixtures:

- ``oauth2_provider``: the session's IdentityProvider, emptied before each test. Tests register
  clients, refresh tokens and service accounts on it, revoke them, expire the tokens it issued,
  and read the form fields of every token request it received.
- ``dovecot_oauth2``: a second Dovecot whose ``oauth2`` passdb checks XOAUTH2 and OAUTHBEARER
  tokens with the provider's introspection endpoint (``introspection_mode = post``). Passwords
  still work for PLAIN and LOGIN, so tests load mailboxes as usual.
- ``oauth2_mail_user``: a fresh user of that Dovecot.

The token endpoint implements the client-credentials grant (RFC 6749 4.4), the refresh-token
grant (6) with optional rotation, and the JWT-bearer grant (RFC 7523) of Google service
accounts, whose assertion it verifies with the account's public key. Its errors follow RFC 6749
5.2 and carry Microsoft-style AADSTS descriptions. Tokens are random, live ``lifetime`` seconds
by the provider's own clock, and are bound to one mailbox user, as an app's access to one
mailbox is.
"""

import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509.oid import NameOID

from tests.dovecot import DovecotServer, MailUser, running_server

HOST = "127.0.0.1"
TOKEN_PATH = "/tenant-test/oauth2/v2.0/token"
INTROSPECTION_PATH = "/introspect"
DEFAULT_LIFETIME = 120
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"


@dataclass(frozen=True)
class AppRegistration:
    """An app registration: its ID, its secret and the mailbox its tokens may open."""

    client_id: str
    secret: str
    username: str


@dataclass
class IssuedToken:
    """An access token the provider issued, with the mailbox it opens and its expiry."""

    value: str
    username: str
    client_id: str
    expires_at: datetime
    revoked: bool = False


@dataclass
class _ServiceAccount:
    client_email: str
    public_key: RSAPublicKey
    subjects: set[str]
    scopes: set[str]


@dataclass
class ProviderState:
    """The provider's registrations, tokens and request log, emptied before each test."""

    clients: dict[str, AppRegistration] = field(default_factory=dict)
    revoked_clients: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    service_accounts: dict[str, _ServiceAccount] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspections: list[str] = field(default_factory=list)
    rotate_refresh_tokens: bool = False
    lifetime: int = DEFAULT_LIFETIME
    reply_override: tuple[int, bytes] | None = None
    before_next_grant: Callable[[], None] | None = None


class IdentityProvider:
    """The token and introspection endpoints, served by one HTTP server in a thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.state = ProviderState()
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), _Handler)
        self._server.daemon_threads = True
        self._server.provider = self  # type: ignore[attr-defined]
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def token_url(self) -> str:
        return f"{self._scheme}://{HOST}:{self.port}{TOKEN_PATH}"

    @property
    def introspection_url(self) -> str:
        return f"{self._scheme}://{HOST}:{self.port}{INTROSPECTION_PATH}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def reset(self) -> None:
        """Forget every client, token and request."""
        with self.lock:
            self.state = ProviderState()

    def add_client(self, username: str) -> AppRegistration:
        """Register an app whose tokens open the mailbox of ``username``."""
        client = AppRegistration(
            client_id=f"app-{secrets.token_hex(4)}",
            secret=f"secret-{secrets.token_urlsafe(18)}",
            username=username,
        )
        with self.lock:
            self.state.clients[client.client_id] = client
        return client

    def add_refresh_token(self, client: AppRegistration) -> str:
        """Issue a refresh token, as a person's consent would, for ``client``'s mailbox."""
        refresh_token = f"rt-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.state.refresh_tokens[refresh_token] = (client.client_id, client.username)
        return refresh_token

    def add_service_account(self, subjects: set[str], scopes: set[str] | None = None) -> str:
        """Create a service account delegated for ``subjects``; return its JSON key file."""
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        client_email = f"acuse-{secrets.token_hex(3)}@project.iam.gserviceaccount.example"
        with self.lock:
            self.state.service_accounts[client_email] = _ServiceAccount(
                client_email,
                private_key.public_key(),
                set(subjects),
                scopes or {GOOGLE_MAIL_SCOPE},
            )
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        key = {
            "type": "service_account",
            "project_id": "acuse-test",
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": client_email,
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": "https://oauth2.googleapis.example/token",
        }
        return json.dumps(key, indent=2)

    def revoke_client(self, client: AppRegistration) -> None:
        """Delete the app, as an administrator would: its tokens and requests stop working."""
        with self.lock:
            self.state.revoked_clients.add(client.client_id)
            for token in self.state.tokens.values():
                if token.client_id == client.client_id:
                    token.revoked = True

    def expire_tokens(self) -> None:
        """Make every token issued so far expire now, whatever lifetime it was given."""
        with self.lock:
            for token in self.state.tokens.values():
                token.expires_at = _now()

    def set_lifetime(self, seconds: int) -> None:
        with self.lock:
            self.state.lifetime = seconds

    def rotate_refresh_tokens(self) -> None:
        """Make each later refresh return a new refresh token and retire the old one."""
        with self.lock:
            self.state.rotate_refresh_tokens = True

    def override_reply(self, status: int, body: bytes) -> None:
        """Reply to every later token request with ``status`` and ``body``."""
        with self.lock:
            self.state.reply_override = (status, body)

    def run_before_next_grant(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the next token request arrives, before the reply is sent."""
        with self.lock:
            self.state.before_next_grant = action

    def token_requests(self) -> list[dict[str, str]]:
        """The form fields of every token request received, oldest first."""
        with self.lock:
            return [dict(request) for request in self.state.token_requests]

    def issued_tokens(self) -> list[str]:
        with self.lock:
            return list(self.state.tokens)

    def introspected_tokens(self) -> list[str]:
        with self.lock:
            return list(self.state.introspections)

    def secrets_seen(self) -> set[str]:
        """Return every client secret, refresh token, access token and assertion seen so far."""
        with self.lock:
            values = {client.secret for client in self.state.clients.values()}
            values |= set(self.state.refresh_tokens)
            values |= set(self.state.tokens)
            for request in self.state.token_requests:
                values |= {request.get("client_secret", ""), request.get("assertion", "")}
                values.add(request.get("refresh_token", ""))
        return {value for value in values if value}

    # Grants, called by the handler with the lock held.

    def grant(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.state.token_requests.append(fields)
        action, self.state.before_next_grant = self.state.before_next_grant, None
        if action is not None:
            action()
        grant_type = fields.get("grant_type")
        if grant_type == "client_credentials":
            return self._client_credentials(fields)
        if grant_type == "refresh_token":
            return self._refresh(fields)
        if grant_type == JWT_BEARER_GRANT:
            return self._jwt_bearer(fields)
        return _error(400, "unsupported_grant_type", f"AADSTS70003: {grant_type!r}.")

    def introspect(self, token: str) -> dict[str, Any]:
        self.state.introspections.append(token)
        issued = self.state.tokens.get(token)
        if issued is None or issued.revoked or issued.expires_at <= _now():
            return {"active": False}
        return {"active": True, "username": issued.username, "client_id": issued.client_id}

    def _client_credentials(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client, failure = self._authenticated_client(fields)
        if client is None:
            assert failure is not None
            return failure
        return 200, self._issue(client.client_id, client.username)

    def _refresh(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client, failure = self._authenticated_client(fields)
        if client is None:
            assert failure is not None
            return failure
        bound = self.state.refresh_tokens.get(fields.get("refresh_token", ""))
        if bound is None or bound[0] != client.client_id:
            return _error(
                400,
                "invalid_grant",
                "AADSTS70008: The provided authorization code or refresh token has expired due "
                "to inactivity.\r\nTrace ID: 0000\r\nCorrelation ID: 0000",
            )
        reply = self._issue(client.client_id, bound[1])
        if self.state.rotate_refresh_tokens:
            del self.state.refresh_tokens[fields["refresh_token"]]
            rotated = f"rt-{secrets.token_urlsafe(24)}"
            self.state.refresh_tokens[rotated] = bound
            reply["refresh_token"] = rotated
        return 200, reply

    def _jwt_bearer(self, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
        assertion = fields.get("assertion", "")
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            account = self.state.service_accounts[issuer]
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "scope"]},
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            return _error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        except (jwt.PyJWTError, KeyError):
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims["sub"] not in account.subjects or claims["scope"] not in account.scopes:
            return _error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        return 200, self._issue(issuer, claims["sub"])

    def _authenticated_client(
        self, fields: dict[str, str]
    ) -> tuple[AppRegistration | None, tuple[int, dict[str, Any]] | None]:
        client_id = fields.get("client_id", "")
        client = self.state.clients.get(client_id)
        if client is None or client_id in self.state.revoked_clients:
            description = (
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                "directory 'tenant-test'."
            )
            return None, _error(400, "unauthorized_client", description)
        if fields.get("client_secret") != client.secret:
            return None, _error(401, "invalid_client", "AADSTS7000215: Invalid client secret.")
        return client, None

    def _issue(self, client_id: str, username: str) -> dict[str, Any]:
        value = f"at-{secrets.token_urlsafe(32)}"
        lifetime = self.state.lifetime
        expires_at = _now() + timedelta(seconds=lifetime)
        self.state.tokens[value] = IssuedToken(value, username, client_id, expires_at)
        return {"access_token": value, "token_type": "Bearer", "expires_in": lifetime}


def client_credentials_table(
    provider: IdentityProvider, folder: Path, client: AppRegistration
) -> dict[str, Any]:
    """Return an ``[oauth2]`` table for ``client``, with its secret written to a file."""
    secret_file = folder / f"{client.client_id}.secret"
    secret_file.write_text(client.secret + "\n", encoding="utf-8")
    return {
        "flow": "client_credentials",
        "client_id": client.client_id,
        "client_secret_file": str(secret_file),
        "token_url": provider.token_url,
    }


def refresh_token_table(
    provider: IdentityProvider, folder: Path, client: AppRegistration, refresh_token: str
) -> dict[str, Any]:
    """Return a Microsoft ``[oauth2]`` table for a refresh token of ``client``."""
    refresh_token_file = folder / f"{client.client_id}.refresh-token"
    refresh_token_file.write_text(refresh_token + "\n", encoding="utf-8")
    refresh_token_file.chmod(0o600)
    return {
        **client_credentials_table(provider, folder, client),
        "flow": "refresh_token",
        "provider": "microsoft",
        "refresh_token_file": str(refresh_token_file),
    }


def service_account_table(provider: IdentityProvider, folder: Path, key: str) -> dict[str, Any]:
    """Return an ``[oauth2]`` table for the service account whose JSON key is ``key``."""
    key_file = folder / f"service-account-{secrets.token_hex(3)}.json"
    key_file.write_text(key, encoding="utf-8")
    return {"flow": "service_account", "key_file": str(key_file), "token_url": provider.token_url}


def oauth2_project(username: str, oauth2: dict[str, Any], **mailbox: Any) -> dict[str, Any]:
    """Return a ``[[projects]]`` entry whose mailbox signs in as ``username`` with ``oauth2``."""
    fields = {
        "host": HOST,
        "port": 143,
        "security": "plain",
        "username": username,
        "auth": "oauth2",
        "oauth2": oauth2,
        **mailbox,
    }
    return {"code": "TDP2", "name": "Torres del Parque Etapa 2", "mailbox": fields}


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_POST(self) -> None:
        provider: IdentityProvider = self.server.provider  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        fields = dict(parse_qsl(self.rfile.read(length).decode("utf-8")))
        with provider.lock:
            override = provider.state.reply_override
            if self.path == INTROSPECTION_PATH:
                status, reply = 200, provider.introspect(fields.get("token", ""))
            elif self.path == TOKEN_PATH and override is not None:
                provider.state.token_requests.append(fields)
                self._send(*override)
                return
            elif self.path == TOKEN_PATH:
                status, reply = provider.grant(fields)
            else:
                status, reply = 404, {"error": "not_found"}
        self._send(status, json.dumps(reply).encode("utf-8"))

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Keep the test output free of one line per request.
        return


def _error(status: int, code: str, description: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": code, "error_description": description, "error_codes": [0]}


def _now() -> datetime:
    return datetime.now(UTC)


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """Return a server TLS context for 127.0.0.1 and the PEM file of its certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acuse test identity platform")])
    now = _now()

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )

    cert_file = folder / "provider-cert.pem"
    key_file = folder / "provider-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@pytest.fixture(scope="session")
def _identity_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def oauth2_provider(_identity_provider: IdentityProvider) -> IdentityProvider:
    """The session's identity platform on 127.0.0.1, with nothing registered."""
    _identity_provider.reset()
    return _identity_provider


@pytest.fixture(scope="session")
def dovecot_oauth2(_identity_provider: IdentityProvider) -> Iterator[DovecotServer]:
    """A Dovecot that accepts XOAUTH2 and OAUTHBEARER tokens that the test provider issued."""
    yield from running_server(oauth2_introspection_url=_identity_provider.introspection_url)


@pytest.fixture
def oauth2_mail_user(dovecot_oauth2: DovecotServer) -> MailUser:
    """A new user of the OAuth2 Dovecot, with an empty mailbox."""
    return dovecot_oauth2.create_user()
