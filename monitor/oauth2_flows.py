"""The three ways acuse obtains an access token, each as the form fields of one token request.

- Client credentials (RFC 6749, 4.4): Microsoft 365 app-only access with a client secret.
- Refresh token (RFC 6749, 6): delegated access for Microsoft 365 or Google. A refresh token that
  the provider rotates is written back to its file atomically before the new access token is
  used, so a restart never goes back to a refresh token that the provider has retired.
- Service account (RFC 7523, 2.1): Google Workspace domain-wide delegation. A JWT assertion,
  signed with the service account's RSA key (RS256), names the mailbox as its subject.

Every secret is read from its file at each token request, so a secret that the operator replaces
is used from the next request on, without a restart. Every value read, and every assertion made,
is registered with the log redaction. One AccessTokenSource drives each flow and serialises its
requests, so a flow object is never used by two threads at once.
"""

import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from config.i18n import _
from config.logs import forget_secret, register_secret
from config.mailbox_settings import MailboxSettings, OAuth2Flow, OAuth2Settings
from config.secrets import read_secret, secret_path
from config.settings import Settings
from monitor.oauth2_endpoint import TokenResponse
from monitor.oauth2_errors import ServiceAccountKeyInvalid

logger = logging.getLogger(__name__)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google accepts assertions that expire at most one hour after they were issued.
ASSERTION_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class SecretFile:
    """A secret file named by the setting ``key``, read at each use."""

    settings: Settings = field(repr=False)
    name: str
    key: str

    @property
    def path(self) -> Path:
        """Where the file is read from (``$CREDENTIALS_DIRECTORY`` first, for a bare name)."""
        return secret_path(self.settings, self.name)

    def read(self) -> str:
        """Read the secret and register it for redaction. Raises SecretError naming the key."""
        value = read_secret(self.settings, self.name, self.key)
        register_secret(value)
        return value


class ExpiringSecrets:
    """Values redacted from the logs until they expire, such as access tokens and assertions.

    A daemon obtains a new token about every hour for each mailbox, so it forgets the expired
    ones instead of checking every log line against all the tokens it ever used.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[datetime, str]] = []

    def register(self, value: str, expires_at: datetime, now: datetime) -> None:
        """Redact ``value`` until ``expires_at``, and stop redacting values expired at ``now``."""
        unexpired: list[tuple[datetime, str]] = []
        for entry in self._entries:
            if entry[0] <= now:
                forget_secret(entry[1])
            else:
                unexpired.append(entry)
        register_secret(value)
        self._entries = [*unexpired, (expires_at, value)]


class TokenFlow(Protocol):
    """One way to obtain an access token: the fields of its request and what to keep of a reply."""

    flow: OAuth2Flow

    def request_fields(self, now: datetime) -> dict[str, str]:
        """Return the form fields of a token request made at ``now``. Reads the secret files."""
        ...

    def accept(self, response: TokenResponse) -> None:
        """Keep what a successful reply changes, such as a rotated refresh token."""
        ...

    def read_secrets(self) -> None:
        """Read and check every secret file of the flow, without any network request."""
        ...


@dataclass
class ClientCredentialsFlow:
    """App-only access with the app's client ID and client secret (Microsoft 365)."""

    client_id: str
    client_secret: SecretFile
    scope: str | None
    flow: OAuth2Flow = OAuth2Flow.CLIENT_CREDENTIALS

    def request_fields(self, now: datetime) -> dict[str, str]:
        fields = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.read(),
        }
        return _with_scope(fields, self.scope)

    def accept(self, response: TokenResponse) -> None:
        return

    def read_secrets(self) -> None:
        self.client_secret.read()


@dataclass
class RefreshTokenFlow:
    """Delegated access with a refresh token that a person's consent produced once.

    ``client_secret`` is None for a public client, which has no secret.
    """

    client_id: str
    client_secret: SecretFile | None
    refresh_token: SecretFile
    scope: str | None
    flow: OAuth2Flow = OAuth2Flow.REFRESH_TOKEN
    # A rotated refresh token that could not be written to its file, used until a write works.
    _unsaved: str | None = field(default=None, init=False, repr=False)
    _last_sent: str | None = field(default=None, init=False, repr=False)

    def request_fields(self, now: datetime) -> dict[str, str]:
        refresh_token = self._unsaved or self.refresh_token.read()
        self._last_sent = refresh_token
        fields = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
        }
        if self.client_secret is not None:
            fields["client_secret"] = self.client_secret.read()
        return _with_scope(fields, self.scope)

    def accept(self, response: TokenResponse) -> None:
        rotated = response.refresh_token
        if rotated is None or rotated == self._last_sent:
            return
        register_secret(rotated)
        path = self.refresh_token.path
        try:
            replace_secret_file(path, rotated)
        except OSError as exc:
            self._unsaved = rotated
            logger.error(
                "Cannot write the rotated refresh token to %s: %s. acuse uses it until it "
                "stops, so make the file writable (not a LoadCredential= file) before then",
                path,
                exc.strerror or exc,
                extra={"key": self.refresh_token.key},
            )
            return
        self._unsaved = None
        logger.info("Refresh token rotated", extra={"key": self.refresh_token.key, "path": path})

    def read_secrets(self) -> None:
        self.refresh_token.read()
        if self.client_secret is not None:
            self.client_secret.read()


@dataclass(frozen=True)
class ServiceAccountKey:
    """The parts of a Google service-account JSON key file that sign an assertion."""

    client_email: str
    key_id: str | None
    private_key: RSAPrivateKey = field(repr=False)


@dataclass
class ServiceAccountFlow:
    """Google Workspace domain-wide delegation: a signed assertion that acts as ``subject``.

    ``audience`` is the token endpoint's URL, which Google requires in the assertion's ``aud``.
    """

    key_file: SecretFile
    subject: str
    scope: str
    audience: str
    flow: OAuth2Flow = OAuth2Flow.SERVICE_ACCOUNT
    _assertions: ExpiringSecrets = field(default_factory=ExpiringSecrets, init=False, repr=False)

    def request_fields(self, now: datetime) -> dict[str, str]:
        key = self.load_key()
        issued_at = int(now.timestamp())
        claims = {
            "iss": key.client_email,
            "sub": self.subject,
            "scope": self.scope,
            "aud": self.audience,
            "iat": issued_at,
            "exp": issued_at + int(ASSERTION_LIFETIME.total_seconds()),
        }
        headers = {"kid": key.key_id} if key.key_id else None
        assertion = jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)
        # The assertion buys a token for as long as it is valid, so it is as secret as the key.
        self._assertions.register(assertion, now + ASSERTION_LIFETIME, now)
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}

    def accept(self, response: TokenResponse) -> None:
        return

    def read_secrets(self) -> None:
        self.load_key()

    def load_key(self) -> ServiceAccountKey:
        """Read and parse the key file. Raises ServiceAccountKeyInvalid naming what is wrong."""
        return parse_service_account_key(self.key_file.read(), self.key_file)


def parse_service_account_key(text: str, source: SecretFile) -> ServiceAccountKey:
    """Parse a Google service-account key file (JSON with client_email and private_key)."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _key_error(source, _("it is not JSON ({error})").format(error=exc.msg)) from exc
    if not isinstance(data, dict):
        raise _key_error(source, _("it is not a JSON object"))
    if data.get("type", "service_account") != "service_account":
        detail = _("its type is {type!r}, not 'service_account'").format(type=data.get("type"))
        raise _key_error(source, detail)

    client_email = data.get("client_email")
    pem = data.get("private_key")
    if not isinstance(client_email, str) or not client_email:
        raise _key_error(source, _("client_email is missing"))
    if not isinstance(pem, str) or not pem:
        raise _key_error(source, _("private_key is missing"))
    register_secret(pem)
    key_id = data.get("private_key_id")
    return ServiceAccountKey(
        client_email=client_email,
        key_id=key_id if isinstance(key_id, str) and key_id else None,
        private_key=_rsa_private_key(pem, source),
    )


def _rsa_private_key(pem: str, source: SecretFile) -> RSAPrivateKey:
    try:
        private_key = load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise _key_error(source, _("private_key is not an unencrypted PEM key")) from exc
    if not isinstance(private_key, RSAPrivateKey):
        raise _key_error(source, _("private_key is not an RSA key"))
    return private_key


def _key_error(source: SecretFile, detail: str) -> ServiceAccountKeyInvalid:
    message = _(
        "The service-account key file {path} for {key} is not a Google service-account key: "
        "{detail}. Download a new JSON key for the service account and write it into the file."
    ).format(path=source.path, key=source.key, detail=detail)
    return ServiceAccountKeyInvalid(message, key=source.key)


def _with_scope(fields: dict[str, str], scope: str | None) -> dict[str, str]:
    if scope is not None:
        fields["scope"] = scope
    return fields


def replace_secret_file(path: Path, value: str) -> None:
    """Replace the file at ``path`` with ``value`` and a newline, keeping its mode and owner.

    The value goes to a temp file in the same folder, which is fsynced and renamed over the old
    file before the folder is fsynced, so a crash leaves either the old or the new secret. A
    symbolic link is followed, so the file it points to is replaced and the link kept.
    """
    path = path.resolve()
    try:
        current: os.stat_result | None = path.stat()
    except FileNotFoundError:
        current = None
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if current is not None:
            temp.chmod(stat.S_IMODE(current.st_mode))
            _keep_owner(temp, current)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _keep_owner(path: Path, previous: os.stat_result) -> None:
    if (previous.st_uid, previous.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.chown(path, previous.st_uid, previous.st_gid)
    except PermissionError:
        # Only root may give a file away; the new file then belongs to the user acuse runs as.
        logger.debug("Cannot keep the owner of %s", path)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def flow_for_mailbox(settings: Settings, project: str, mailbox: MailboxSettings) -> TokenFlow:
    """Build the token flow that ``mailbox``'s ``[oauth2]`` table describes.

    Raises ValueError when the mailbox does not use OAuth2.
    """
    oauth2 = mailbox.oauth2
    if oauth2 is None:
        message = f"the mailbox of project {project} has no [oauth2] table"
        raise ValueError(message)

    prefix = f"projects[{project}].mailbox.oauth2"
    if oauth2.flow is OAuth2Flow.CLIENT_CREDENTIALS:
        return ClientCredentialsFlow(
            client_id=_required(oauth2.client_id, "client_id"),
            client_secret=_secret_file(settings, oauth2, "client_secret_file", prefix),
            scope=oauth2.effective_scope,
        )
    if oauth2.flow is OAuth2Flow.REFRESH_TOKEN:
        client_secret = None
        if oauth2.client_secret_file is not None:
            client_secret = _secret_file(settings, oauth2, "client_secret_file", prefix)
        return RefreshTokenFlow(
            client_id=_required(oauth2.client_id, "client_id"),
            client_secret=client_secret,
            refresh_token=_secret_file(settings, oauth2, "refresh_token_file", prefix),
            scope=oauth2.effective_scope,
        )
    return ServiceAccountFlow(
        key_file=_secret_file(settings, oauth2, "key_file", prefix),
        subject=oauth2.subject or mailbox.username,
        scope=_required(oauth2.effective_scope, "scope"),
        audience=oauth2.effective_token_url,
    )


def _secret_file(settings: Settings, oauth2: OAuth2Settings, name: str, prefix: str) -> SecretFile:
    return SecretFile(settings, _required(getattr(oauth2, name), name), f"{prefix}.{name}")


def _required(value: str | None, key: str) -> str:
    # The settings validation makes every flow's keys present; this guards the types.
    if value is None:
        message = f"oauth2.{key} is missing although the settings validation requires it"
        raise ValueError(message)
    return value
