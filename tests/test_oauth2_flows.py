"""Each token flow's request, as the test token endpoint on 127.0.0.1 receives it.

The endpoint is real HTTP: it checks client secrets and refresh tokens, verifies the
service-account assertion with the account's public key, and rotates refresh tokens on request.
"""

import json
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from config.settings import Settings
from monitor.oauth2 import AccessTokenSource, build_token_source
from monitor.oauth2_errors import ServiceAccountKeyInvalid, TokenRequestRejected
from tests.oauth2_provider import (
    IdentityProvider,
    client_credentials_table,
    oauth2_project,
    refresh_token_table,
    service_account_table,
)

MAILBOX = "evidencias-tdp2@constructora.example"
SourceFactory = Callable[[dict[str, Any]], AccessTokenSource]


@pytest.fixture
def make_source(make_settings: Callable[..., Settings]) -> SourceFactory:
    """Build the token source of a project whose mailbox uses the ``[oauth2]`` table given."""

    def build(oauth2: dict[str, Any]) -> AccessTokenSource:
        settings = make_settings(projects=[oauth2_project(MAILBOX, oauth2)])
        mailbox = settings.projects[0].mailbox
        assert mailbox is not None
        return build_token_source(settings, "TDP2", mailbox, timedelta(seconds=10))

    return build


def test_client_credentials_form_fields(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    source = make_source(client_credentials_table(oauth2_provider, tmp_path, client))

    source.token()

    assert oauth2_provider.token_requests() == [
        {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.secret,
            "scope": "https://outlook.office365.com/.default",
        }
    ]


def test_refresh_token_form_fields(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    refresh_token = oauth2_provider.add_refresh_token(client)
    source = make_source(refresh_token_table(oauth2_provider, tmp_path, client, refresh_token))

    source.token()

    assert oauth2_provider.token_requests() == [
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
            "client_secret": client.secret,
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        }
    ]


def test_public_client_sends_no_secret(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    refresh_token = oauth2_provider.add_refresh_token(client)
    table = refresh_token_table(oauth2_provider, tmp_path, client, refresh_token)
    del table["client_secret_file"]
    source = make_source(table)

    with pytest.raises(TokenRequestRejected):
        source.token()

    assert "client_secret" not in oauth2_provider.token_requests()[0]


def test_custom_scope_is_sent(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    table = client_credentials_table(oauth2_provider, tmp_path, client)
    source = make_source({**table, "scope": "https://outlook.office365.com/.default openid"})

    source.token()

    assert oauth2_provider.token_requests()[0]["scope"] == (
        "https://outlook.office365.com/.default openid"
    )


def test_rotated_refresh_token_written_to_file(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    first = oauth2_provider.add_refresh_token(client)
    table = refresh_token_table(oauth2_provider, tmp_path, client, first)
    refresh_token_file = Path(table["refresh_token_file"])
    refresh_token_file.chmod(0o640)
    oauth2_provider.rotate_refresh_tokens()
    source = make_source(table)

    source.token()

    rotated = refresh_token_file.read_text(encoding="utf-8")
    assert rotated.endswith("\n")
    assert rotated.strip() != first
    assert rotated.strip() in oauth2_provider.state.refresh_tokens
    assert refresh_token_file.stat().st_mode & 0o777 == 0o640
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_rotated_refresh_token_used_next(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    first = oauth2_provider.add_refresh_token(client)
    table = refresh_token_table(oauth2_provider, tmp_path, client, first)
    oauth2_provider.rotate_refresh_tokens()
    source = make_source(table)

    source.token()
    source.renew()

    requests = oauth2_provider.token_requests()
    assert requests[0]["refresh_token"] == first
    assert requests[1]["refresh_token"] != first
    assert len(oauth2_provider.issued_tokens()) == 2


def test_rotation_follows_symbolic_link(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    table = refresh_token_table(
        oauth2_provider, tmp_path, client, oauth2_provider.add_refresh_token(client)
    )
    target = Path(table["refresh_token_file"])
    link = tmp_path / "refresh-token-link"
    link.symlink_to(target)
    oauth2_provider.rotate_refresh_tokens()
    source = make_source({**table, "refresh_token_file": str(link)})

    source.token()

    assert link.is_symlink()
    assert target.read_text(encoding="utf-8").strip() in oauth2_provider.state.refresh_tokens


def test_unrotated_refresh_token_file_untouched(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    refresh_token = oauth2_provider.add_refresh_token(client)
    table = refresh_token_table(oauth2_provider, tmp_path, client, refresh_token)
    refresh_token_file = Path(table["refresh_token_file"])
    inode = refresh_token_file.stat().st_ino
    source = make_source(table)

    source.token()

    assert refresh_token_file.stat().st_ino == inode
    assert refresh_token_file.read_text(encoding="utf-8") == refresh_token + "\n"


def test_unwritable_rotation_kept_in_memory(
    oauth2_provider: IdentityProvider,
    tmp_path: Path,
    make_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    folder = tmp_path / "credentials"
    folder.mkdir()
    table = refresh_token_table(
        oauth2_provider, folder, client, oauth2_provider.add_refresh_token(client)
    )
    table["client_secret_file"] = str(tmp_path / "client-secret")
    (tmp_path / "client-secret").write_text(client.secret, encoding="utf-8")
    oauth2_provider.rotate_refresh_tokens()
    source = make_source(table)
    # The folder disappears while the request is in flight, so the rotated token has nowhere
    # to go, as with a read-only credentials folder.
    oauth2_provider.run_before_next_grant(lambda: shutil.rmtree(folder))

    with caplog.at_level(logging.ERROR, logger="monitor.oauth2_flows"):
        source.token()
    source.renew()

    requests = oauth2_provider.token_requests()
    assert len(oauth2_provider.issued_tokens()) == 2
    assert requests[1]["refresh_token"] != requests[0]["refresh_token"]
    assert "Cannot write the rotated refresh token" in caplog.text


def test_service_account_assertion_claims(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    key = oauth2_provider.add_service_account({MAILBOX})
    source = make_source(service_account_table(oauth2_provider, tmp_path, key))

    source.token()

    request = oauth2_provider.token_requests()[0]
    assert request["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert set(request) == {"grant_type", "assertion"}
    claims = jwt.decode(request["assertion"], options={"verify_signature": False})
    assert claims["iss"] == json.loads(key)["client_email"]
    assert claims["sub"] == MAILBOX
    assert claims["scope"] == "https://mail.google.com/"
    assert claims["aud"] == oauth2_provider.token_url
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - datetime.now(UTC).timestamp()) < 600
    assert (
        jwt.get_unverified_header(request["assertion"])["kid"] == json.loads(key)["private_key_id"]
    )


def test_service_account_subject_setting(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    delegated = "archivo-tdp2@constructora.example"
    key = oauth2_provider.add_service_account({delegated})
    table = service_account_table(oauth2_provider, tmp_path, key)
    source = make_source({**table, "subject": delegated})

    source.token()

    assertion = oauth2_provider.token_requests()[0]["assertion"]
    assert jwt.decode(assertion, options={"verify_signature": False})["sub"] == delegated


def test_undelegated_subject_rejected(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    key = oauth2_provider.add_service_account({"otro@constructora.example"})
    source = make_source(service_account_table(oauth2_provider, tmp_path, key))

    with pytest.raises(TokenRequestRejected) as caught:
        source.token()

    assert caught.value.error_code == "unauthorized_client"
    assert "Domain-wide delegation" in str(caught.value)
    assert "https://mail.google.com/" in str(caught.value)


def test_key_from_other_account_rejected(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    registered = json.loads(oauth2_provider.add_service_account({MAILBOX}))
    other = json.loads(oauth2_provider.add_service_account({MAILBOX}))
    forged = {**registered, "private_key": other["private_key"]}
    source = make_source(service_account_table(oauth2_provider, tmp_path, json.dumps(forged)))

    with pytest.raises(TokenRequestRejected) as caught:
        source.token()

    assert caught.value.error_code == "invalid_grant"
    assert "Invalid JWT Signature" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("not json", "it is not JSON"),
        ("[]", "it is not a JSON object"),
        ('{"type": "authorized_user"}', "its type is 'authorized_user'"),
        ('{"private_key": "x"}', "client_email is missing"),
        ('{"client_email": "a@b.example"}', "private_key is missing"),
        ('{"client_email": "a@b.example", "private_key": "x"}', "not an unencrypted PEM key"),
    ],
)
def test_invalid_key_file_is_named(
    oauth2_provider: IdentityProvider,
    tmp_path: Path,
    make_source: SourceFactory,
    content: str,
    detail: str,
) -> None:
    source = make_source(service_account_table(oauth2_provider, tmp_path, content))

    with pytest.raises(ServiceAccountKeyInvalid) as caught:
        source.token()

    assert caught.value.key == "projects[TDP2].mailbox.oauth2.key_file"
    assert detail in str(caught.value)
    assert oauth2_provider.token_requests() == []


def test_secret_read_at_each_request(
    oauth2_provider: IdentityProvider, tmp_path: Path, make_source: SourceFactory
) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    table = client_credentials_table(oauth2_provider, tmp_path, client)
    source = make_source(table)
    source.token()
    Path(table["client_secret_file"]).write_text("replaced-secret\n", encoding="utf-8")

    with pytest.raises(TokenRequestRejected):
        source.renew()

    assert oauth2_provider.token_requests()[1]["client_secret"] == "replaced-secret"
