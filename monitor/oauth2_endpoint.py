"""The token endpoint of an identity platform: one form POST per token request (RFC 6749).

Requests go over HTTPS with the system's trust store (or ``oauth2.ca_file``), hostname checks and
TLS 1.2 or later. Plain http is accepted only towards a loopback address, which is how tests run
a token endpoint in the same process. Redirects are not followed, because a token endpoint has
no reason to redirect and a redirect could carry the client secret elsewhere. Proxies named in
the environment (``https_proxy``) are used, except for loopback addresses.

A reply is one of three things: a token (HTTP 200 with ``access_token``), an OAuth2 error (a JSON
object with ``error``, raised as TokenRequestRejected with the provider's code and the fix), or
anything else (TokenResponseInvalid).
"""

import http.client
import json
import logging
import re
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from config.errors import ConfigError
from config.i18n import N_, _
from config.mailbox_settings import OAuth2Flow, OAuth2Provider
from config.types import is_loopback_host
from monitor.oauth2_errors import (
    OAuth2Error,
    TokenEndpointUnreachable,
    TokenRequestRejected,
    TokenResponseInvalid,
)

logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1024 * 1024
USER_AGENT = "acuse (OAuth2 token client)"
_AADSTS_CODE = re.compile(r"\bAADSTS\d+\b")

# The fix for a Microsoft Entra error, by the AADSTS code in its description. Entra puts the
# same OAuth2 code (invalid_client, invalid_request) on very different faults.
_MICROSOFT_FIXES = {
    "AADSTS7000215": N_(
        "Write the client secret's value, not its secret ID, into the client secret file."
    ),
    "AADSTS7000222": N_(
        "The client secret has expired: create a new one in the app registration and write it "
        "into the client secret file."
    ),
    "AADSTS700016": N_(
        "No app with this client ID exists in the tenant: check oauth2.client_id and oauth2.tenant."
    ),
    "AADSTS90002": N_(
        "The tenant does not exist: check oauth2.tenant (the tenant ID or the primary domain)."
    ),
    "AADSTS65001": N_(
        "An administrator has not granted consent to the app's permissions: grant admin "
        "consent in the app registration."
    ),
}
# The fix for an OAuth2 error code, for one flow (first) or for every flow (None).
_ERROR_FIXES = {
    ("invalid_client", None): N_(
        "Check oauth2.client_id and the client secret file: the identity platform did not "
        "accept the client's credentials, or the app was deleted."
    ),
    ("invalid_grant", OAuth2Flow.REFRESH_TOKEN): N_(
        "The refresh token has expired or was revoked (for example by a password change or a "
        "withdrawn consent): obtain a new one and write it into the refresh token file."
    ),
    ("invalid_grant", OAuth2Flow.SERVICE_ACCOUNT): N_(
        "Check oauth2.subject (or mailbox.username), which must be a user of the Workspace "
        "domain, and that the key in the key file was not deleted from the service account."
    ),
    ("unauthorized_client", OAuth2Flow.SERVICE_ACCOUNT): N_(
        "Domain-wide delegation does not cover this client and scope: in the Google Admin "
        "console, authorise the service account's client ID for the scope {scope}."
    ),
    ("unauthorized_client", None): N_(
        "The app may not use this flow, or it is missing from the tenant: check "
        "oauth2.client_id, oauth2.tenant and the app registration."
    ),
    ("invalid_scope", None): N_(
        "Check oauth2.scope: Microsoft 365 app-only access needs "
        "https://outlook.office365.com/.default and Google needs https://mail.google.com/."
    ),
    ("access_denied", None): N_(
        "An administrator must grant consent to the app's IMAP permission, then try again."
    ),
    ("consent_required", None): N_(
        "An administrator must grant consent to the app's IMAP permission, then try again."
    ),
}
_DEFAULT_FIX = N_(
    "Check the [projects.mailbox.oauth2] settings against the app's registration at the identity "
    "platform."
)


@dataclass(frozen=True)
class TokenResponse:
    """A successful token reply. ``expires_in`` is in seconds, None when the reply omits it."""

    access_token: str = field(repr=False)
    expires_in: int | None
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None


@dataclass(frozen=True)
class EndpointSettings:
    """The URL and options of one mailbox's token requests."""

    url: str
    project: str
    flow: OAuth2Flow
    provider: OAuth2Provider | None
    scope: str | None
    ca_file: Path | None
    timeout: timedelta


class _RejectRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # Returning None makes urllib raise the 3xx reply as an HTTPError.
        return None


class TokenEndpoint:
    """The token endpoint of one mailbox, reached over HTTPS (or http on loopback)."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.url = settings.url
        self._check_transport()

    def request_token(self, fields: dict[str, str]) -> TokenResponse:
        """POST ``fields`` as a form and return the token in the reply.

        Raises TokenRequestRejected when the endpoint returns an OAuth2 error,
        TokenEndpointUnreachable when it cannot be reached in time or fails the TLS checks, and
        TokenResponseInvalid for any other reply.
        """
        status, body = self._post(urlencode(fields).encode("ascii"))
        reply = self._json_object(status, body)
        if "error" in reply:
            raise self._rejection(status, reply)
        if status != 200:
            raise self._invalid(_("HTTP {status} without an OAuth2 error").format(status=status))
        return self._token_response(reply)

    def _check_transport(self) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme == "https" and host:
            return
        if parts.scheme == "http" and is_loopback_host(host):
            return
        message = _(
            "The token endpoint {url} of project {project} is not an https:// URL; plain http is "
            "allowed only towards a loopback address. Fix oauth2.token_url."
        ).format(url=self.url, project=self.settings.project)
        raise ConfigError(message, key="projects.mailbox.oauth2.token_url")

    def _post(self, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked at construction
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        opener = self._opener()
        timeout = self.settings.timeout.total_seconds()
        try:
            with opener.open(request, timeout=timeout) as reply:
                return reply.status, reply.read(MAX_REPLY_BYTES)
        except urllib.error.HTTPError as exc:
            # An OAuth2 error comes as HTTP 400 or 401 with a JSON body, which urllib raises.
            with exc:
                return exc.code, exc.read(MAX_REPLY_BYTES) if exc.fp is not None else b""
        except urllib.error.URLError as exc:
            self._raise_unreachable(exc.reason, exc)
        except (OSError, http.client.HTTPException) as exc:
            self._raise_unreachable(exc, exc)

    def _opener(self) -> urllib.request.OpenerDirector:
        # An empty mapping turns proxies off; None reads them from the environment.
        proxies: dict[str, str] | None = None
        if is_loopback_host(urlsplit(self.url).hostname or ""):
            proxies = {}
        return urllib.request.build_opener(
            urllib.request.ProxyHandler(proxies),
            urllib.request.HTTPSHandler(context=self._ssl_context()),
            _RejectRedirects(),
        )

    def _ssl_context(self) -> ssl.SSLContext:
        ca_file = self.settings.ca_file
        try:
            context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            message = _(
                "Cannot load the CA file {path} of project {project}: {error}. Check "
                "oauth2.ca_file: it must name a PEM file with the token endpoint's CA certificate."
            ).format(path=ca_file, project=self.settings.project, error=exc)
            raise ConfigError(message, key="projects.mailbox.oauth2.ca_file") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _raise_unreachable(self, reason: object, exc: BaseException) -> NoReturn:
        arguments = {"url": self.url, "project": self.settings.project}
        if isinstance(reason, TimeoutError | socket.timeout):
            message = _(
                "The token endpoint {url} did not reply within {seconds} seconds (project "
                "{project}). Try again later, or raise the mailbox timeout."
            ).format(seconds=f"{self.settings.timeout.total_seconds():g}", **arguments)
        elif isinstance(reason, ssl.SSLCertVerificationError):
            message = _(
                "The TLS certificate of the token endpoint {url} (project {project}) is not "
                "trusted: {detail}. Name the endpoint's CA certificate in oauth2.ca_file."
            ).format(detail=reason.verify_message or reason, **arguments)
        else:
            message = _(
                "Cannot reach the token endpoint {url} for the mailbox of project {project}: "
                "{detail}. Check the network and oauth2.token_url, then try again."
            ).format(detail=_reason_text(reason), **arguments)
        raise TokenEndpointUnreachable(
            message, project=self.settings.project, token_url=self.url
        ) from exc

    def _json_object(self, status: int, body: bytes) -> dict[str, Any]:
        try:
            reply = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            reply = None
        if not isinstance(reply, dict):
            raise self._invalid(
                _("HTTP {status} with a body that is not a JSON object").format(status=status)
            )
        return reply

    def _token_response(self, reply: dict[str, Any]) -> TokenResponse:
        access_token = reply.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._invalid(_("a JSON object without access_token"))
        token_type = reply.get("token_type")
        # RFC 6749 makes token_type case-insensitive; XOAUTH2 and OAUTHBEARER carry Bearer only.
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise self._invalid(_("a token of type {type!r}").format(type=token_type))
        refresh_token = reply.get("refresh_token")
        scope = reply.get("scope")
        return TokenResponse(
            access_token=access_token,
            expires_in=self._expires_in(reply.get("expires_in")),
            refresh_token=refresh_token
            if isinstance(refresh_token, str) and refresh_token
            else None,
            scope=scope if isinstance(scope, str) else None,
        )

    def _expires_in(self, value: object) -> int | None:
        if value is None:
            return None
        # Some endpoints send the number as a string.
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self._invalid(_("an expires_in of {value!r}").format(value=value))
        return value

    def _rejection(self, status: int, reply: dict[str, Any]) -> TokenRequestRejected:
        code = str(reply.get("error"))
        description = _first_line(reply.get("error_description"))
        fix = _fix_for(code, description, self.settings).format(scope=self.settings.scope)
        explained = f"{code} ({description})" if description else code
        message = _(
            "The token endpoint {url} rejected the OAuth2 token request for the mailbox of project "
            "{project}: {error}. {fix}"
        ).format(url=self.url, project=self.settings.project, error=explained, fix=fix)
        logger.warning(
            "Token request rejected",
            extra={
                "project": self.settings.project,
                "token_url": self.url,
                "status": status,
                "error": code,
            },
        )
        return TokenRequestRejected(
            message,
            project=self.settings.project,
            token_url=self.url,
            error_code=code,
            description=description,
            status=status,
        )

    def _invalid(self, detail: str) -> OAuth2Error:
        message = _(
            "The token endpoint {url} returned {detail} instead of an access token (project "
            "{project}). Check oauth2.token_url; when it is right, the identity platform has a "
            "fault: try again later."
        ).format(url=self.url, detail=detail, project=self.settings.project)
        return TokenResponseInvalid(message, project=self.settings.project, token_url=self.url)


def _fix_for(code: str, description: str, settings: EndpointSettings) -> str:
    """Return the translated advice for an OAuth2 error, most specific first."""
    if settings.provider is OAuth2Provider.MICROSOFT or settings.provider is None:
        match = _AADSTS_CODE.search(description)
        if match is not None and match.group() in _MICROSOFT_FIXES:
            return _(_MICROSOFT_FIXES[match.group()])
    for flow in (settings.flow, None):
        fix = _ERROR_FIXES.get((code, flow))
        if fix is not None:
            return _(fix)
    return _(_DEFAULT_FIX)


def _first_line(value: object) -> str:
    """Return the first line of an error description, without Entra's trace and time lines."""
    if not isinstance(value, str):
        return ""
    line = value.strip().splitlines()[0] if value.strip() else ""
    return line.strip().rstrip(".")


def _reason_text(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
