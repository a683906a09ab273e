"""Raw messages fetched from one project's IMAP folder, without changing anything on the server.

The ingest pipeline owns the durable cursor ``(uidvalidity, last_uid)``. The contract:

1. ``connect()`` (or ``with source:``), then ``examine()`` returns the folder's UIDVALIDITY.
2. When it differs from the cursor's, the cursor's UIDs no longer name the same messages, so
   the pipeline starts again from UID 0.
3. ``fetch_new(last_uid)`` yields batches of the messages with a higher UID, in UID order. The
   pipeline archives a batch, then records it and moves the cursor to the batch's last UID in
   one transaction, so a crash repeats at most one batch and never skips one.

The login step uses the mailbox's ``auth``: LOGIN with the password, or an OAuth2 access token
over SASL XOAUTH2 or OAUTHBEARER. A cached token that the server rejects as invalid is replaced
by a fresh one and the login is tried once more, because the token may have expired or been
revoked before the time the token endpoint gave.

The folder is opened with EXAMINE and bodies are fetched with ``BODY.PEEK[]``, so acuse sets no
flag, expunges nothing and moves nothing. The connection stays open between calls, so later
polls and IDLE can reuse it: ``refresh()`` checks a folder that is still selected with one
NOOP. After a timeout or a dropped connection, ``connect()`` opens a new one.
"""

import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientAbortError, LoginError

from config.errors import AcuseError, ConfigError
from config.i18n import _
from config.logs import register_secret
from config.mailbox_settings import MailboxAuth, MailboxSettings
from config.settings import ProjectView, Settings
from config.types import Security
from monitor.oauth2 import AccessTokenSource, token_sources
from monitor.sasl_bearer import BearerExchange, choose_mechanism, offered_mechanisms
from monitor.source_errors import (
    FolderNotFound,
    LoginFailed,
    MailboxCommandFailed,
    MailboxError,
    MailboxTimeout,
    MailboxUnreachable,
    TlsFailed,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
FETCH_ITEMS = [b"BODY.PEEK[]", b"RFC822.SIZE"]
# Seconds between checks of the stop signal while waiting in IDLE.
IDLE_TICK = 1.0
_LIBRARY_ERRORS = (imaplib.IMAP4.error, OSError)
_ERROR_KINDS: tuple[tuple[tuple[type[BaseException], ...], type[MailboxError]], ...] = (
    ((TimeoutError,), MailboxTimeout),
    ((ssl.SSLError,), TlsFailed),
    ((OSError, IMAPClientAbortError), MailboxUnreachable),
)


@dataclass(frozen=True)
class FolderState:
    """The folder as EXAMINE reported it. ``uidnext`` is None when the server omits it."""

    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class FetchedMessage:
    """One message exactly as the server sent it, with its UID in the examined folder."""

    uid: int
    raw: bytes


class ImapSource:
    """One project's IMAP folder, read with EXAMINE and ``BODY.PEEK[]``."""

    def __init__(
        self,
        project: str,
        mailbox: MailboxSettings,
        password: str | None,
        *,
        timeout: timedelta,
        fetch_batch: int,
        tokens: AccessTokenSource | None = None,
    ) -> None:
        """Read ``mailbox`` with ``password``, or with ``tokens`` when it signs in with OAuth2."""
        if mailbox.auth is MailboxAuth.PASSWORD and password is None:
            message = "a mailbox with auth = password needs the password"
            raise ValueError(message)
        if mailbox.auth is MailboxAuth.OAUTH2 and tokens is None:
            message = "a mailbox with auth = oauth2 needs a token source"
            raise ValueError(message)
        if timeout <= timedelta(0):
            message = f"IMAP timeout must be positive, not {timeout}"
            raise ValueError(message)
        if fetch_batch < 1:
            message = f"fetch batch size must be at least 1, not {fetch_batch}"
            raise ValueError(message)

        self.project = project
        self.mailbox = mailbox
        self._password = password
        self._tokens = tokens
        self._timeout = timeout.total_seconds()
        self._fetch_batch = fetch_batch
        self._client: IMAPClient | None = None
        self._folder_state: FolderState | None = None
        # Whether only EXAMINE and NOOP ran since the folder was examined (see refresh()).
        self._view_current = False
        self._login_mechanism: str | None = None
        if password is not None:
            register_secret(password)

    @classmethod
    def for_project(
        cls, settings: Settings, project: ProjectView, password: str | None = None
    ) -> Self:
        """Build the source of ``project`` with its timeout, the batch size and a resolved CA file.

        A mailbox that signs in with OAuth2 gets the process's token source for it, and needs no
        password. Raises ConfigError when the project has no mailbox.
        """
        mailbox = project.settings.mailbox
        if mailbox is None:
            message = _(
                "Project {code} has no mailbox: add a [projects.mailbox] section to read its "
                "evidence over IMAP."
            ).format(code=project.code)
            raise ConfigError(message, key="projects.mailbox")
        tokens = None
        if mailbox.auth is MailboxAuth.OAUTH2:
            tokens = token_sources.for_mailbox(
                settings, project.code, mailbox, project.imap_timeout
            )
        if mailbox.ca_file is not None:
            ca_file = settings.resolve_path(mailbox.ca_file)
            mailbox = mailbox.model_copy(update={"ca_file": ca_file})

        return cls(
            project.code,
            mailbox,
            password,
            timeout=project.imap_timeout,
            fetch_batch=settings.defaults.fetch_batch,
            tokens=tokens,
        )

    @property
    def connected(self) -> bool:
        """Whether a logged-in connection is open."""
        return self._client is not None

    @property
    def token_source(self) -> AccessTokenSource | None:
        """Where the access tokens come from, or None when the mailbox uses a password."""
        return self._tokens

    @property
    def login_mechanism(self) -> str | None:
        """How the last login signed in (``LOGIN``, ``XOAUTH2``, ``OAUTHBEARER``), once chosen."""
        return self._login_mechanism

    @property
    def folder_state(self) -> FolderState | None:
        """What the last ``examine()`` on this connection reported, or None before it."""
        return self._folder_state

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection, secure it as configured and log in, unless one is already open.

        Raises a MailboxError subclass naming the cause.
        """
        if self._client is not None:
            return

        self._client = self._open_connection()
        try:
            if self.mailbox.security is Security.STARTTLS:
                context = self._ssl_context()
                self._command("STARTTLS", lambda client: client.starttls(context))
            self._log_in()
        except AcuseError:
            # A MailboxError, or no access token: the connection is of no use either way.
            self._drop_connection()
            raise
        logger.debug("Logged in", extra={**self._log_fields(), "mechanism": self._login_mechanism})

    def close(self) -> None:
        """Log out and close the connection. When the logout fails, only the socket is closed."""
        if self._client is None:
            return
        try:
            self._command("LOGOUT", lambda client: client.logout())
        except MailboxError as exc:
            logger.debug("Logout failed: %s", exc, extra=self._log_fields())
        self._drop_connection()

    def examine(self) -> FolderState:
        """Open the folder read-only and return its UIDVALIDITY, UIDNEXT and message count.

        Raises FolderNotFound when the folder does not exist, and MailboxCommandFailed when the
        server refuses it or reports no UIDVALIDITY.
        """
        folder = self.mailbox.folder
        self._folder_state = None
        try:
            response = self._command(
                "EXAMINE", lambda client: client.select_folder(folder, readonly=True)
            )
        except MailboxCommandFailed as exc:
            # Servers report a missing folder in different ways, so check with LIST.
            if self._command("LIST", lambda client: client.folder_exists(folder)):
                raise
            raise self._error(FolderNotFound, "EXAMINE", exc) from exc

        self._folder_state = self._folder_state_from(response)
        self._view_current = True
        logger.debug(
            "Examined folder",
            extra={
                **self._log_fields(),
                "uidvalidity": self._folder_state.uidvalidity,
                "exists": self._folder_state.exists,
            },
        )
        return self._folder_state

    def refresh(self) -> FolderState:
        """Return the folder's state, with one NOOP round trip while the examined view is current.

        The view is current when only EXAMINE and NOOP ran since the folder was examined, so
        the untagged responses of a NOOP announce every change. With none but flag updates, the
        state from EXAMINE is still valid and is returned. Otherwise, and after a SEARCH, FETCH or
        IDLE (whose responses may carry an EXISTS that imapclient keeps to itself), the folder
        is examined again. STATUS does not serve here: on the selected folder Dovecot 2.3
        reports the selected view and not new messages. Without a connection, or after the
        server dropped it, this connects, logs in and examines, as ``connect()`` and
        ``examine()`` do.
        """
        known = self._folder_state
        if self._client is not None and known is not None and self._view_current:
            try:
                _text, responses = self._command("NOOP", lambda client: client.noop())
            except (MailboxUnreachable, MailboxTimeout) as exc:
                # _command has dropped the connection; a new one is opened below.
                logger.info("Connection lost, reconnecting: %s", exc, extra=self._log_fields())
            else:
                if not _announces_changes(responses):
                    return known
        self.connect()
        return self.examine()

    def fetch_new(self, after_uid: int) -> Iterator[list[FetchedMessage]]:
        """Search the examined folder for UIDs above ``after_uid`` and yield them in batches.

        Batches hold up to ``fetch_batch`` messages and come in ascending UID order. A message
        expunged by someone else between the search and the fetch is left out. Raises
        RuntimeError when ``examine()`` was not called on this connection.
        """
        if after_uid < 0:
            message = f"after_uid must be 0 or more, not {after_uid}"
            raise ValueError(message)
        if self._client is None or self._folder_state is None:
            message = "call connect() and examine() before fetch_new()"
            raise RuntimeError(message)

        self._view_current = False
        uids = self._uids_after(after_uid)
        logger.debug("Found new messages", extra={**self._log_fields(), "count": len(uids)})
        return self._fetch_batches(uids)

    def check(self) -> FolderState:
        """Connect, log in, EXAMINE the folder and log out, changing nothing on the server."""
        with self:
            return self.examine()

    def supports_idle(self) -> bool:
        """Whether the server offers IDLE (RFC 2177) on this connection."""
        return bool(self._command("CAPABILITY", lambda client: client.has_capability("IDLE")))

    def idle_wait(self, duration: timedelta, stop: threading.Event) -> bool:
        """Wait in IDLE up to ``duration`` for the server to announce new messages.

        Returns whether it announced any (EXISTS or RECENT). IDLE always ends with DONE before
        this returns, so the connection can run commands again; ``stop`` being set also ends
        the wait, within IDLE_TICK seconds. A connection that the server closed or that stopped
        answering raises MailboxUnreachable or MailboxTimeout, because DONE then fails.
        """
        if self._client is None or self._folder_state is None:
            message = "call connect() and examine() before idle_wait()"
            raise RuntimeError(message)

        self._view_current = False
        self._command("IDLE", lambda client: client.idle())
        deadline = time.monotonic() + duration.total_seconds()
        announced = False
        while not announced and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(IDLE_TICK, remaining)
            started = time.monotonic()
            responses = self._command("IDLE", partial(_idle_check, timeout=wait))
            self._check_not_closed(responses)
            announced = _announces_messages(responses)
            if not responses and time.monotonic() - started < wait / 2:
                # imapclient returns an empty list at once when the server closed the
                # connection (EOF), which would otherwise spin; DONE tells that apart from
                # a spurious wake-up, because it fails on a closed connection.
                break

        _text, responses = self._command("DONE", lambda client: client.idle_done())
        logger.debug("IDLE ended", extra={**self._log_fields(), "announced": announced})
        return announced or _announces_messages(responses)

    def abort(self) -> None:
        """Shut the socket down from another thread, so a blocked command fails at once.

        The thread that runs the command gets MailboxUnreachable and drops the connection.
        Before ``connect()`` returns there is no socket to shut down; the IMAP timeout alone
        bounds the wait for the server's greeting.
        """
        client = self._client
        if client is None:
            return
        try:
            client.socket().shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            logger.debug("Aborting the connection failed: %s", exc, extra=self._log_fields())

    def _check_not_closed(self, responses: list[Any]) -> None:
        for response in responses:
            if isinstance(response, tuple) and response and response[0] == b"BYE":
                self._drop_connection()
                detail = _("the server ended the connection during IDLE")
                raise self._error(MailboxUnreachable, "IDLE", detail)

    def _log_in(self) -> None:
        if self._tokens is None:
            username, password = self.mailbox.username, self._password
            self._login_mechanism = "LOGIN"
            self._command("LOGIN", lambda client: client.login(username, password))
            return
        self._log_in_with_token(self._tokens)

    def _log_in_with_token(self, tokens: AccessTokenSource) -> None:
        """Sign in with an access token, and once more with a fresh one when a cached one fails.

        Raises LoginFailed when the server offers no bearer-token mechanism or rejects the
        token, and what ``tokens`` raises when no token can be obtained.
        """
        mechanism = self._bearer_mechanism()
        cached = tokens.cached_token()
        token = cached or tokens.token()
        exchange = self._bearer_exchange(mechanism, token.value)
        try:
            self._authenticate(exchange)
            return
        except LoginFailed:
            if cached is None or not exchange.may_be_expired:
                raise

        logger.info(
            "Access token rejected, signing in again with a new one",
            extra={
                **self._log_fields(),
                "mechanism": mechanism,
                "error": exchange.describe_error(),
            },
        )
        tokens.discard(token)
        self._authenticate(self._bearer_exchange(mechanism, tokens.renew().value))

    def _bearer_mechanism(self) -> str:
        assert self.mailbox.oauth2 is not None
        capabilities = self._command("CAPABILITY", lambda client: client.capabilities())
        offered = offered_mechanisms(capabilities)
        mechanism = choose_mechanism(self.mailbox.oauth2.mechanism, offered)
        if mechanism is None:
            detail = " ".join(sorted(offered)) or "-"
            raise self._error(LoginFailed, "CAPABILITY", detail)
        self._login_mechanism = mechanism
        return mechanism

    def _bearer_exchange(self, mechanism: str, token: str) -> BearerExchange:
        mailbox = self.mailbox
        return BearerExchange(
            mechanism, mailbox.username, token, mailbox.host, mailbox.effective_port
        )

    def _authenticate(self, exchange: BearerExchange) -> None:
        command = f"AUTHENTICATE {exchange.mechanism}"
        try:
            self._command(command, lambda client: client.sasl_login(exchange.mechanism, exchange))
        except LoginFailed as exc:
            server_error = exchange.describe_error()
            if not server_error:
                raise
            detail = f"{_detail(exc.__cause__ or str(exc))} ({server_error})"
            raise self._error(LoginFailed, command, detail) from exc.__cause__

    def _uids_after(self, after_uid: int) -> list[int]:
        criteria = ["UID", f"{after_uid + 1}:*"]
        found = self._command("SEARCH", lambda client: client.search(criteria))
        # A range n:* always matches the highest UID, even one below n (RFC 3501, 6.4.8).
        return sorted(uid for uid in found if uid > after_uid)

    def _fetch_batches(self, uids: list[int]) -> Iterator[list[FetchedMessage]]:
        for start in range(0, len(uids), self._fetch_batch):
            batch = self._fetch_messages(uids[start : start + self._fetch_batch])
            if batch:
                yield batch

    def _fetch_messages(self, uids: list[int]) -> list[FetchedMessage]:
        response = self._command("FETCH", lambda client: client.fetch(uids, FETCH_ITEMS))
        messages: list[FetchedMessage] = []
        for uid in uids:
            items = response.get(uid)
            # A message that another client expunged since the search is missing from the reply
            # or comes back with a NIL body, as Dovecot 2.3 does (with OK [EXPUNGEISSUED]).
            if items is None or items.get(b"BODY[]", b"") is None:
                logger.info(
                    "Message expunged before fetch", extra={**self._log_fields(), "uid": uid}
                )
                continue
            messages.append(self._fetched_message(uid, items))
        return messages

    def _fetched_message(self, uid: int, items: dict[bytes, Any]) -> FetchedMessage:
        raw = items.get(b"BODY[]")
        if not isinstance(raw, bytes):
            detail = _("no body for UID {uid}").format(uid=uid)
            raise self._error(MailboxCommandFailed, "FETCH", detail)

        size = items.get(b"RFC822.SIZE")
        if size != len(raw):
            # Some servers report approximate sizes, so this is a warning and not an error.
            logger.warning(
                "Fetched body size differs from RFC822.SIZE",
                extra={**self._log_fields(), "uid": uid, "size": len(raw), "reported": size},
            )
        return FetchedMessage(uid=uid, raw=raw)

    def _folder_state_from(self, response: dict[bytes, Any]) -> FolderState:
        uidvalidity = response.get(b"UIDVALIDITY")
        if uidvalidity is None:
            detail = _("no UIDVALIDITY in the EXAMINE response")
            raise self._error(MailboxCommandFailed, "EXAMINE", detail)
        uidnext = response.get(b"UIDNEXT")
        return FolderState(
            uidvalidity=int(uidvalidity),
            uidnext=None if uidnext is None else int(uidnext),
            exists=int(response.get(b"EXISTS", 0)),
        )

    def _open_connection(self) -> IMAPClient:
        use_tls = self.mailbox.security is Security.TLS
        context = self._ssl_context() if use_tls else None
        logger.debug("Connecting", extra=self._log_fields())
        try:
            return IMAPClient(
                self.mailbox.host,
                port=self.mailbox.effective_port,
                ssl=use_tls,
                ssl_context=context,
                timeout=self._timeout,
            )
        except _LIBRARY_ERRORS as exc:
            raise self._library_error("CONNECT", exc) from exc

    def _command(self, name: str, action: Callable[[IMAPClient], T]) -> T:
        """Run one IMAP command with the timeout set, and map library errors to MailboxError.

        The timeout bounds each socket read and write, so a server that keeps trickling bytes
        can take longer in total. After an error that leaves the connection unusable (a
        timeout, a dropped connection, a TLS failure), the connection is closed so that
        ``connect()`` opens a new one.
        """
        client = self._client
        if client is None:
            message = f"IMAP {name} needs a connection: call connect() first"
            raise RuntimeError(message)

        client.socket().settimeout(self._timeout)
        logger.debug("IMAP %s", name, extra=self._log_fields())
        try:
            return action(client)
        except _LIBRARY_ERRORS as exc:
            error = self._library_error(name, exc)
            if not isinstance(error, MailboxCommandFailed | LoginFailed):
                self._drop_connection()
            raise error from exc

    def _library_error(self, command: str, exc: BaseException) -> MailboxError:
        return self._error(_error_kind(command, exc), command, exc)

    def _error(
        self, kind: type[MailboxError], command: str, cause: BaseException | str
    ) -> MailboxError:
        """Build a ``kind`` error whose message names the mailbox, the cause and the fix."""
        template = _message_template(kind, command, cause)
        message = template.format(
            project=self.project,
            host=self.mailbox.host,
            port=self.mailbox.effective_port,
            folder=self.mailbox.folder,
            username=self.mailbox.username,
            command=command,
            seconds=f"{self._timeout:g}",
            detail=_detail(cause),
            token_url="" if self._tokens is None else self._tokens.token_url,
        )
        return kind(
            message,
            project=self.project,
            host=self.mailbox.host,
            port=self.mailbox.effective_port,
            folder=self.mailbox.folder,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        ca_file = self.mailbox.ca_file
        try:
            context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            message = _(
                "Cannot load the CA file {path} of project {project}: {error}. Check "
                "mailbox.ca_file: it must name a PEM file with the server's CA certificate."
            ).format(path=ca_file, project=self.project, error=exc)
            raise ConfigError(message, key="projects.mailbox.ca_file") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        self._folder_state = None
        if client is None:
            return
        try:
            client.shutdown()
        except _LIBRARY_ERRORS as exc:
            logger.debug("Closing the socket failed: %s", exc, extra=self._log_fields())

    def _log_fields(self) -> dict[str, Any]:
        return {"project": self.project, "host": self.mailbox.host, "folder": self.mailbox.folder}


def _idle_check(client: IMAPClient, timeout: float) -> list[Any]:
    responses: list[Any] = client.idle_check(timeout=timeout)
    return responses


def _announces_messages(responses: list[Any]) -> bool:
    """Whether IDLE responses such as ``(3, b"EXISTS")`` announce messages."""
    return any(
        isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")
        for response in responses
    )


def _announces_changes(responses: list[Any]) -> bool:
    """Return whether NOOP responses report anything but flag updates (``(3, b"FETCH", ...)``)."""
    return any(
        not (isinstance(response, tuple) and len(response) >= 2 and response[1] == b"FETCH")
        for response in responses
    )


def _error_kind(command: str, exc: BaseException) -> type[MailboxError]:
    """Return the MailboxError subclass for a library error raised by ``command``."""
    if isinstance(exc, LoginError):
        # RFC 5530 UNAVAILABLE: a subsystem such as the user database is down, so the
        # credentials may well be right. imapclient also reports a connection lost during
        # LOGIN as a LoginError, with imaplib's "socket error" text.
        text = str(exc)
        unreachable = "[UNAVAILABLE]" in text or "socket error" in text
        return MailboxUnreachable if unreachable else LoginFailed
    if isinstance(exc, CapabilityError) and command == "STARTTLS":
        return TlsFailed
    # TimeoutError and ssl.SSLError are OSErrors, so they come first.
    for library_errors, kind in _ERROR_KINDS:
        if isinstance(exc, library_errors):
            return kind
    return MailboxCommandFailed


def _message_template(kind: type[MailboxError], command: str, cause: BaseException | str) -> str:
    """Return the translated message for an error of ``kind``, with named placeholders."""
    if kind is TlsFailed:
        return _tls_message_template(cause)
    if kind is LoginFailed and command == "CAPABILITY":
        return _(
            "The mailbox of project {project} at {host}:{port} offers no OAuth2 sign-in that "
            "oauth2.mechanism allows (it offers: {detail}). Check mailbox.host and "
            'oauth2.mechanism, or set auth = "password".'
        )
    if kind is LoginFailed and command.startswith("AUTHENTICATE"):
        return _(
            "The mailbox of project {project} at {host}:{port} rejected the {command} login of "
            "{username} with an access token from {token_url}: {detail}. Check that "
            "mailbox.username is the mailbox the app may read and that the app has IMAP access "
            "to it: on Microsoft 365 the IMAP.AccessAsApp permission and a mailbox permission "
            "for its service principal, on Google Workspace domain-wide delegation for "
            "https://mail.google.com/."
        )
    templates = {
        MailboxTimeout: _(
            "The mailbox of project {project} at {host}:{port} did not reply to {command} within "
            "{seconds} seconds. Check that the server is up, or raise the mailbox timeout."
        ),
        MailboxUnreachable: _(
            "Cannot reach the mailbox of project {project} at {host}:{port} ({command}): "
            "{detail}. Check the host, the port and the network, then try again."
        ),
        LoginFailed: _(
            "The mailbox of project {project} at {host}:{port} rejected the login of "
            "{username}: {detail}. Check mailbox.username and the password file."
        ),
        FolderNotFound: _(
            "Folder {folder!r} does not exist in the mailbox of project {project} at {host}. "
            "Check mailbox.folder, and note that folder names other than INBOX are case-sensitive."
        ),
    }
    generic = _(
        "The mailbox of project {project} at {host}:{port} rejected {command} on folder "
        "{folder!r}: {detail}."
    )
    return templates.get(kind, generic)


def _tls_message_template(cause: BaseException | str) -> str:
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _(
            "The TLS certificate of the mailbox of project {project} at {host}:{port} is not "
            "trusted: {detail}. Name the server's CA certificate in mailbox.ca_file, or install "
            "a certificate that a public CA signed on the server."
        )
    if isinstance(cause, CapabilityError):
        return _(
            "The mailbox of project {project} at {host}:{port} does not offer STARTTLS. Set "
            'mailbox.security = "tls" and use the server\'s TLS port (usually 993).'
        )
    return _(
        "TLS with the mailbox of project {project} at {host}:{port} failed: {detail}. Check "
        'that mailbox.security matches the port: "tls" for 993, "starttls" for 143.'
    )


def _detail(cause: BaseException | str) -> str:
    """Return the server's or the library's words for ``cause``, without bytes markers."""
    if isinstance(cause, str):
        return cause
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return str(cause.verify_message)
    if isinstance(cause, OSError) and not isinstance(cause, ssl.SSLError) and cause.strerror:
        return cause.strerror
    text = str(cause) or type(cause).__name__
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        text = text[2:-1]
    # The templates end the sentence themselves.
    return text.rstrip(". ")
