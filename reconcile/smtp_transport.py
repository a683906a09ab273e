"""One SMTP session for alert emails: connect, protect, log in, and send message after message.

``tls`` connects with implicit TLS (port 465) and ``starttls`` upgrades a plain connection
(port 587) and refuses to go on when the server does not offer STARTTLS. Both verify the
server's certificate and host name against the system's trust store, or against ``ca_file``.
``plain`` is only accepted towards a loopback address, which the settings check.
Every library error leaves this module as an SmtpError subclass that names the server.
"""

import base64
import smtplib
import ssl
from dataclasses import dataclass, field
from types import TracebackType

from config.alert_settings import SmtpSettings
from config.errors import AcuseError
from config.i18n import _
from config.types import Security


class SmtpError(AcuseError):
    """The SMTP server could not be used; ``server`` is ``host:port``."""

    def __init__(self, message: str, server: str) -> None:
        super().__init__(message)
        self.server = server


class SmtpUnavailable(SmtpError):
    """The server cannot be reached, dropped the connection or failed TLS."""


class SmtpLoginFailed(SmtpError):
    """The server rejected the user name or password."""


class SmtpRejected(SmtpError):
    """The server refused one message: the sender, every recipient or the content."""


@dataclass(frozen=True)
class Accepted:
    """The server's reply to an accepted message, and the recipients it refused, if any."""

    reply: str
    refused: dict[str, str] = field(default_factory=dict)


def _reply_text(code: int, text: bytes | str) -> str:
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(decoded.split())}"


class SmtpTransport:
    """A connection to the configured SMTP server; use it as a context manager."""

    def __init__(self, smtp: SmtpSettings, password: str | None) -> None:
        self.smtp = smtp
        self._password = password
        self._client: smtplib.SMTP | None = None

    @property
    def server(self) -> str:
        return f"{self.smtp.host}:{self.smtp.effective_port}"

    def __enter__(self) -> "SmtpTransport":
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect, protect the connection as configured and log in when a user is set."""
        try:
            self._client = self._connect()
            if self.smtp.username is not None:
                self._login(self._client, self.smtp.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            message = _(
                "The SMTP server {server} rejected the login of {username}: {reply}. "
                "Check [smtp] username and the password file."
            ).format(
                server=self.server,
                username=self.smtp.username,
                reply=_reply_text(exc.smtp_code, exc.smtp_error),
            )
            raise SmtpLoginFailed(message, self.server) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            message = _("Cannot connect to the SMTP server {server}: {error}.").format(
                server=self.server, error=exc or type(exc).__name__
            )
            raise SmtpUnavailable(message, self.server) from exc

    @staticmethod
    def _login(client: smtplib.SMTP, username: str, password: str) -> None:
        if (username + password).isascii():
            client.login(username, password)
            return
        # smtplib encodes credentials as ASCII; AUTH PLAIN carries UTF-8 (RFC 4616).
        client.ehlo_or_helo_if_needed()
        if "plain" not in client.esmtp_features.get("auth", "").lower().split():
            raise smtplib.SMTPAuthenticationError(
                535, b"non-ASCII credentials need AUTH PLAIN, which the server does not offer"
            )
        token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode())
        code, reply = client.docmd("AUTH", "PLAIN " + token.decode("ascii"))
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)

    def _connect(self) -> smtplib.SMTP:
        timeout = self.smtp.timeout.total_seconds()
        context = ssl.create_default_context(
            cafile=str(self.smtp.ca_file) if self.smtp.ca_file else None
        )
        host, port = self.smtp.host, self.smtp.effective_port
        if self.smtp.security is Security.TLS:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            client.ehlo()
            return client
        client = smtplib.SMTP(host, port, timeout=timeout)
        client.ehlo()
        if self.smtp.security is Security.STARTTLS:
            if not client.has_extn("starttls"):
                client.close()
                message = _(
                    "The SMTP server {server} does not offer STARTTLS: "
                    'use security = "tls" or a server that supports STARTTLS.'
                ).format(server=self.server)
                raise SmtpUnavailable(message, self.server)
            client.starttls(context=context)
            client.ehlo()
        return client

    def send(self, sender: str, recipients: list[str], raw: bytes) -> Accepted:
        """Send one message; return the server's final reply when it accepts it.

        Raises SmtpRejected when the server refuses the sender, every recipient or the data,
        and SmtpUnavailable when the connection breaks.
        """
        client = self._client
        if client is None:
            self.open()
            client = self._client
        assert client is not None
        try:
            return self._transaction(client, sender, recipients, raw)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            message = _("The SMTP server {server} dropped the connection: {error}.").format(
                server=self.server, error=exc or type(exc).__name__
            )
            raise SmtpUnavailable(message, self.server) from exc

    def _transaction(
        self, client: smtplib.SMTP, sender: str, recipients: list[str], raw: bytes
    ) -> Accepted:
        code, text = client.mail(sender)
        if code != 250:
            self._reset(client)
            raise self._rejected(_reply_text(code, text))

        refused: dict[str, str] = {}
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code not in {250, 251}:
                refused[recipient] = _reply_text(code, text)
        if len(refused) == len(recipients):
            self._reset(client)
            raise self._rejected("; ".join(f"{k}: {v}" for k, v in refused.items()))

        code, text = client.data(raw)
        if code != 250:
            self._reset(client)
            raise self._rejected(_reply_text(code, text))
        return Accepted(_reply_text(code, text), refused)

    def _rejected(self, reply: str) -> SmtpRejected:
        message = _("The SMTP server {server} refused the alert email: {reply}.").format(
            server=self.server, reply=reply
        )
        return SmtpRejected(message, self.server)

    @staticmethod
    def _reset(client: smtplib.SMTP) -> None:
        try:
            client.rset()
        except smtplib.SMTPException:
            # The next transaction fails on its own if the server is really gone.
            return

    def close(self) -> None:
        """Say QUIT and close; a server that is already gone is not an error here."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
