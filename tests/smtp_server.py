"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records every message it accepts.

The server runs in a thread of the test process. ``stop()`` closes the port, so a client gets
"connection refused" as from a server that is down, and ``start()`` opens the same port again.
"""

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
USERNAME = "alertas@constructora.example"
PASSWORD = "contraseña-de-prueba-smtp"
SENDER = "Acuse <alertas@constructora.example>"
# freezegun must leave the server's event loop on the real clock.
FREEZEGUN_IGNORE = ["asyncio", "aiosmtpd", "tests.smtp_server"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted, with its envelope."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def email(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.email["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body with newlines, as a reader sees it."""
        body = self.email.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        return str(body.get_content()).replace("\r\n", "\n")

    @property
    def html(self) -> str:
        """The HTML body with newlines."""
        body = self.email.get_body(("html",))
        assert isinstance(body, EmailMessage)
        return str(body.get_content()).replace("\r\n", "\n")

    @property
    def csv_text(self) -> str:
        """The CSV attachment decoded, without its byte order mark."""
        attachment = next(self.email.iter_attachments())
        data = attachment.get_payload(decode=True)
        assert isinstance(data, bytes)
        return data.decode("utf-8-sig").replace("\r\n", "\n")


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.queued = 0

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or b""
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw))
        self.queued += 1
        return f"250 2.0.0 Ok: queued as TEST{self.queued:04d}"


def _authenticate(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        valid = auth_data.login.decode() == USERNAME and auth_data.password.decode() == PASSWORD
        return AuthResult(success=valid)
    return AuthResult(success=False)


class SmtpServer:
    """An aiosmtpd server on a fixed loopback port that can be stopped and started again."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.port = _free_port()
        self.recorder = _Recorder()
        self._tls_context = tls_context
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self._tls_context is not None:
            options = {
                "tls_context": self._tls_context,
                "require_starttls": True,
                "authenticator": _authenticate,
                "auth_require_tls": True,
            }
        self._controller = Controller(
            self.recorder, hostname=HOST, port=self.port, ready_timeout=10, **options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def smtp_settings(self) -> dict[str, Any]:
        """The ``[smtp]`` section that points at this server without TLS."""
        return {"host": HOST, "port": self.port, "security": "plain", "from": SENDER}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on 127.0.0.1 that records what it accepts."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """Create a self-signed certificate for 127.0.0.1; return the certificate and key files."""
    certificate, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=acuse test SMTP",
        "-addext", f"subjectAltName=IP:{HOST},DNS:localhost",
        "-keyout", str(key), "-out", str(certificate),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"openssl could not create the test certificate: {result.stderr}")
    return certificate, key


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[tuple[SmtpServer, Path]]:
    """An SMTP server that requires STARTTLS and a login; yields it and its CA file."""
    certificate, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server = SmtpServer(tls_context=context)
    server.start()
    yield server, certificate
    server.stop()
