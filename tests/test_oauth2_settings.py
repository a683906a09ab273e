"""The mailbox's ``auth`` key and its ``[projects.mailbox.oauth2]`` table: defaults and errors."""

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.mailbox_settings import (
    MailboxAuth,
    OAuth2Flow,
    OAuth2Provider,
    OAuth2Settings,
    SaslMechanism,
)
from config.settings import Settings, load_settings

PROJECT = """
[database]
url = "sqlite:///acuse.db"

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"

[projects.mailbox]
host = "outlook.office365.com"
username = "evidencias-tdp2@constructora.example"
"""
CLIENT_CREDENTIALS = """auth = "oauth2"

[projects.mailbox.oauth2]
flow = "client_credentials"
tenant = "constructora.example"
client_id = "00000000-1111-2222-3333-444444444444"
client_secret_file = "tdp2-client-secret"
"""


def load(tmp_path: Path, mailbox_keys: str) -> Settings:
    path = tmp_path / "acuse.toml"
    path.write_text(PROJECT + mailbox_keys, encoding="utf-8")
    return load_settings(path)


def load_error(tmp_path: Path, mailbox_keys: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, mailbox_keys)
    return caught.value


def oauth2_settings(settings: Settings) -> OAuth2Settings:
    mailbox = settings.projects[0].mailbox
    assert mailbox is not None
    assert mailbox.oauth2 is not None
    return mailbox.oauth2


def oauth2_table(flow: str, keys: str) -> str:
    return f'auth = "oauth2"\n\n[projects.mailbox.oauth2]\nflow = "{flow}"\n{keys}'


def test_auth_defaults_to_password(tmp_path: Path) -> None:
    settings = load(tmp_path, 'password_file = "tdp2-imap"\n')

    mailbox = settings.projects[0].mailbox
    assert mailbox is not None
    assert mailbox.auth is MailboxAuth.PASSWORD
    assert mailbox.oauth2 is None


def test_password_auth_needs_password_file(tmp_path: Path) -> None:
    error = load_error(tmp_path, "")

    assert error.key == "projects[0].mailbox"
    assert "password_file is required" in str(error)


def test_oauth2_auth_needs_no_password_file(tmp_path: Path) -> None:
    settings = load(tmp_path, CLIENT_CREDENTIALS)

    mailbox = settings.projects[0].mailbox
    assert mailbox is not None
    assert mailbox.auth is MailboxAuth.OAUTH2
    assert mailbox.password_file is None


def test_oauth2_auth_needs_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, 'auth = "oauth2"\n')

    assert "[projects.mailbox.oauth2]" in str(error)


def test_oauth2_table_needs_oauth2_auth(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS.replace('auth = "oauth2"', 'password_file = "tdp2-imap"')

    error = load_error(tmp_path, text)

    assert 'auth = "password"' in str(error)


def test_client_credentials_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, CLIENT_CREDENTIALS)

    oauth2 = oauth2_settings(settings)
    assert oauth2.flow is OAuth2Flow.CLIENT_CREDENTIALS
    assert oauth2.effective_provider is OAuth2Provider.MICROSOFT
    assert oauth2.effective_scope == "https://outlook.office365.com/.default"
    assert oauth2.effective_token_url == (
        "https://login.microsoftonline.com/constructora.example/oauth2/v2.0/token"
    )
    assert oauth2.mechanism is SaslMechanism.AUTO


def test_client_credentials_needs_tenant(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS.replace('tenant = "constructora.example"\n', "")

    error = load_error(tmp_path, text)

    assert error.key == "projects[0].mailbox.oauth2"
    assert "tenant is required" in str(error)


def test_missing_client_secret_file_is_named(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS.replace('client_secret_file = "tdp2-client-secret"\n', "")

    error = load_error(tmp_path, text)

    assert 'client_secret_file is required when flow = "client_credentials"' in str(error)


def test_key_of_other_flow_is_named(tmp_path: Path) -> None:
    error = load_error(tmp_path, CLIENT_CREDENTIALS + 'key_file = "google-key.json"\n')

    assert 'key_file is not used when flow = "client_credentials"' in str(error)


def test_unknown_flow_is_named(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS.replace('"client_credentials"', '"password_grant"')

    error = load_error(tmp_path, text)

    assert error.key == "projects[0].mailbox.oauth2.flow"


def test_refresh_token_needs_provider_or_url(tmp_path: Path) -> None:
    keys = 'client_id = "app"\nrefresh_token_file = "tdp2-refresh-token"\n'

    error = load_error(tmp_path, oauth2_table("refresh_token", keys))

    assert 'provider = "microsoft" or "google"' in str(error)


def test_refresh_token_google_defaults(tmp_path: Path) -> None:
    keys = (
        'provider = "google"\nclient_id = "app.apps.googleusercontent.example"\n'
        'client_secret_file = "client-secret"\nrefresh_token_file = "tdp2-refresh-token"\n'
    )

    settings = load(tmp_path, oauth2_table("refresh_token", keys))

    oauth2 = oauth2_settings(settings)
    assert oauth2.effective_token_url == "https://oauth2.googleapis.com/token"
    assert oauth2.effective_scope is None


def test_refresh_token_microsoft_defaults(tmp_path: Path) -> None:
    keys = 'provider = "microsoft"\nclient_id = "app"\nrefresh_token_file = "tdp2-rt"\n'

    settings = load(tmp_path, oauth2_table("refresh_token", keys))

    oauth2 = oauth2_settings(settings)
    assert oauth2.effective_token_url == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    )
    assert oauth2.effective_scope == (
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    )


def test_service_account_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, oauth2_table("service_account", 'key_file = "google-key.json"\n'))

    oauth2 = oauth2_settings(settings)
    assert oauth2.effective_provider is OAuth2Provider.GOOGLE
    assert oauth2.effective_scope == "https://mail.google.com/"
    assert oauth2.effective_token_url == "https://oauth2.googleapis.com/token"
    assert oauth2.subject is None


def test_service_account_with_microsoft_rejected(tmp_path: Path) -> None:
    keys = 'provider = "microsoft"\nkey_file = "google-key.json"\n'

    error = load_error(tmp_path, oauth2_table("service_account", keys))

    assert 'works only with provider = "google"' in str(error)


def test_plain_http_token_url_rejected(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS + 'token_url = "http://login.example.co/token"\n'

    error = load_error(tmp_path, text)

    assert error.key == "projects[0].mailbox.oauth2.token_url"
    assert "plain http" in str(error)


def test_http_token_url_allowed_on_loopback(tmp_path: Path) -> None:
    text = CLIENT_CREDENTIALS + 'token_url = "http://127.0.0.1:8080/token"\n'

    settings = load(tmp_path, text)

    oauth2 = oauth2_settings(settings)
    assert oauth2.effective_token_url == "http://127.0.0.1:8080/token"


def test_token_url_without_scheme_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, CLIENT_CREDENTIALS + 'token_url = "login.example.co/token"\n')

    assert "write an https:// URL" in str(error)


def test_unknown_mechanism_is_named(tmp_path: Path) -> None:
    error = load_error(tmp_path, CLIENT_CREDENTIALS + 'mechanism = "plain"\n')

    assert error.key == "projects[0].mailbox.oauth2.mechanism"
