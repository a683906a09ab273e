"""XOAUTH2 and OAUTHBEARER: initial responses, replies to an error, and the mechanism choice."""

import pytest

from config.mailbox_settings import SaslMechanism
from monitor.sasl_bearer import BearerExchange, choose_mechanism, offered_mechanisms

CAPABILITIES = (b"IMAP4REV1", b"SASL-IR", b"AUTH=PLAIN", b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER")


def test_xoauth2_initial_response() -> None:
    exchange = BearerExchange("XOAUTH2", "evidencias@constructora.example", "at-1", "h", 993)

    assert exchange(b"") == b"user=evidencias@constructora.example\x01auth=Bearer at-1\x01\x01"


def test_oauthbearer_initial_response() -> None:
    exchange = BearerExchange("OAUTHBEARER", "a=b,c@example.co", "at-1", "imap.example.co", 993)

    assert exchange(b"") == (
        b"n,a=a=3Db=2Cc@example.co,\x01host=imap.example.co\x01port=993\x01auth=Bearer at-1\x01\x01"
    )


def test_xoauth2_error_gets_empty_reply() -> None:
    exchange = BearerExchange("XOAUTH2", "user", "at-1", "h", 993)
    exchange(b"")

    reply = exchange(b'{"status":"401","schemes":"bearer","scope":"mail"}')

    assert reply == b""
    assert exchange.server_error == {"status": "401", "schemes": "bearer", "scope": "mail"}
    assert exchange.may_be_expired
    assert exchange.describe_error() == "schemes=bearer, scope=mail, status=401"


def test_oauthbearer_error_gets_dummy_reply() -> None:
    exchange = BearerExchange("OAUTHBEARER", "user", "at-1", "h", 993)
    exchange(b"")

    reply = exchange(b'{"status":"invalid_token"}')

    assert reply == b"\x01"
    assert exchange.may_be_expired


def test_scope_error_is_not_expiry() -> None:
    exchange = BearerExchange("XOAUTH2", "user", "at-1", "h", 993)
    exchange(b"")

    exchange(b'{"status":"403","scope":"https://mail.google.com/"}')

    assert not exchange.may_be_expired


def test_rejection_without_reason_may_be_expiry() -> None:
    exchange = BearerExchange("XOAUTH2", "user", "at-1", "h", 993)

    exchange(b"")

    assert exchange.server_error is None
    assert exchange.may_be_expired


def test_unknown_mechanism_raises() -> None:
    with pytest.raises(ValueError, match="PLAIN"):
        BearerExchange("PLAIN", "user", "at-1", "h", 993)


def test_offered_mechanisms_from_capabilities() -> None:
    assert offered_mechanisms([*CAPABILITIES, "auth=login"]) == {
        "PLAIN",
        "XOAUTH2",
        "OAUTHBEARER",
        "LOGIN",
    }


@pytest.mark.parametrize(
    ("configured", "offered", "expected"),
    [
        (SaslMechanism.AUTO, {"PLAIN", "XOAUTH2", "OAUTHBEARER"}, "XOAUTH2"),
        (SaslMechanism.AUTO, {"PLAIN", "OAUTHBEARER"}, "OAUTHBEARER"),
        (SaslMechanism.AUTO, {"PLAIN", "LOGIN"}, None),
        (SaslMechanism.OAUTHBEARER, {"XOAUTH2", "OAUTHBEARER"}, "OAUTHBEARER"),
        (SaslMechanism.XOAUTH2, {"OAUTHBEARER"}, None),
    ],
)
def test_mechanism_choice(
    configured: SaslMechanism, offered: set[str], expected: str | None
) -> None:
    assert choose_mechanism(configured, offered) == expected
