"""SASL exchanges that present an OAuth2 access token to an IMAP server: XOAUTH2 and OAUTHBEARER.

XOAUTH2 is the mechanism that Google and Microsoft document for IMAP; OAUTHBEARER is its
standard successor (RFC 7628). Both send the user name and ``auth=Bearer <token>`` in the
initial response. A server that rejects the token first sends a JSON error as a challenge. The
client replies with an empty response (XOAUTH2) or a single 0x01 byte (OAUTHBEARER, RFC 7628
3.2.3), and the server then ends the command with NO.
"""

import json
from collections.abc import Iterable
from typing import Any

from config.logs import register_secret
from config.mailbox_settings import SaslMechanism

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
# XOAUTH2 comes first: it is the mechanism that Microsoft documents for Exchange Online IMAP.
_AUTO_ORDER = (XOAUTH2, OAUTHBEARER)
# The error statuses that mean the token itself is invalid or expired. XOAUTH2 servers send an
# HTTP status, "401" for a bad token (Dovecot 2.3 does), and RFC 7628 3.2.2 names "invalid_token".
_INVALID_TOKEN_STATUSES = {"401", "invalid_token"}


def offered_mechanisms(capabilities: Iterable[bytes | str]) -> set[str]:
    """Return the SASL mechanisms named by ``AUTH=`` capabilities, in upper case."""
    offered: set[str] = set()
    for capability in capabilities:
        text = (
            capability.decode("ascii", "replace") if isinstance(capability, bytes) else capability
        )
        name, _, mechanism = text.upper().partition("=")
        if name == "AUTH" and mechanism:
            offered.add(mechanism)
    return offered


def choose_mechanism(configured: SaslMechanism, offered: set[str]) -> str | None:
    """Return the mechanism to use, or None when the server offers none that fits."""
    candidates = _AUTO_ORDER if configured is SaslMechanism.AUTO else (configured.value.upper(),)
    return next((name for name in candidates if name in offered), None)


class BearerExchange:
    """One AUTHENTICATE exchange that presents ``token``, as imapclient's ``sasl_login`` drives it.

    After a rejected login, ``server_error`` contains the JSON error the server sent, if any.
    """

    def __init__(self, mechanism: str, username: str, token: str, host: str, port: int) -> None:
        if mechanism not in _AUTO_ORDER:
            message = f"unsupported bearer-token mechanism {mechanism!r}"
            raise ValueError(message)
        self.mechanism = mechanism
        self.token = token
        self.server_error: dict[str, Any] | None = None
        self._initial = _initial_response(mechanism, username, token, host, port)
        self._sent = False
        # imaplib logs only the size of an AUTHENTICATE response, never its base64 text. So the
        # token alone is registered for redaction, and a test checks the wire trace for both.
        register_secret(token)

    def __call__(self, challenge: bytes) -> bytes:
        if not self._sent:
            self._sent = True
            return self._initial
        self.server_error = _parse_error(challenge)
        return b"" if self.mechanism == XOAUTH2 else b"\x01"

    @property
    def may_be_expired(self) -> bool:
        """Whether the rejection may be an expired or revoked token, and not, say, a scope.

        True when the server ended with a bare NO and gave no reason.
        """
        if not self.server_error:
            return True
        return str(self.server_error.get("status", "")) in _INVALID_TOKEN_STATUSES

    def describe_error(self) -> str:
        """Return the server's error challenge as ``key=value`` pairs, or an empty string."""
        if not self.server_error:
            return ""
        return ", ".join(f"{key}={value}" for key, value in sorted(self.server_error.items()))


def _initial_response(mechanism: str, username: str, token: str, host: str, port: int) -> bytes:
    if mechanism == XOAUTH2:
        text = f"user={username}\x01auth=Bearer {token}\x01\x01"
    else:
        # RFC 5801 section 4: "=" and "," in the authorization identity are escaped.
        identity = username.replace("=", "=3D").replace(",", "=2C")
        text = f"n,a={identity},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return text.encode("utf-8")


def _parse_error(challenge: bytes) -> dict[str, Any]:
    if not challenge.strip():
        return {}
    try:
        error = json.loads(challenge)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"challenge": challenge.decode("utf-8", "replace")}
    return error if isinstance(error, dict) else {"challenge": str(error)}
