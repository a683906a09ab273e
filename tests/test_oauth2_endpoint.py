"""The token endpoint client: transport checks, TLS, and the errors a person can act on."""

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.mailbox_settings import OAuth2Flow, OAuth2Provider
from monitor.oauth2_endpoint import EndpointSettings, TokenEndpoint
from monitor.oauth2_errors import (
    TokenEndpointUnreachable,
    TokenRequestRejected,
    TokenResponseInvalid,
)
from tests.oauth2_provider import IdentityProvider, self_signed_tls

MAILBOX = "evidencias-tdp2@constructora.example"


def endpoint(
    url: str,
    *,
    flow: OAuth2Flow = OAuth2Flow.CLIENT_CREDENTIALS,
    ca_file: Path | None = None,
    timeout: float = 5,
) -> TokenEndpoint:
    return TokenEndpoint(
        EndpointSettings(
            url=url,
            project="TDP2",
            flow=flow,
            provider=OAuth2Provider.MICROSOFT,
            scope="https://outlook.office365.com/.default",
            ca_file=ca_file,
            timeout=timedelta(seconds=timeout),
        )
    )


def client_fields(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


@pytest.fixture
def https_provider(tmp_path: Path) -> Iterator[tuple[IdentityProvider, Path]]:
    """A token endpoint over TLS with a self-signed certificate, and that certificate's file."""
    context, cert_file = self_signed_tls(tmp_path)
    provider = IdentityProvider(tls=context)
    provider.start()
    yield provider, cert_file
    provider.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts TCP connections (through the backlog) but never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_token_returned_with_lifetime(oauth2_provider: IdentityProvider) -> None:
    client = oauth2_provider.add_client(MAILBOX)

    response = endpoint(oauth2_provider.token_url).request_token(
        client_fields(client.client_id, client.secret)
    )

    assert response.access_token in oauth2_provider.issued_tokens()
    assert response.expires_in == 120
    assert response.refresh_token is None


def test_plain_http_off_loopback_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        endpoint("http://login.example.co/token")

    assert caught.value.key == "projects.mailbox.oauth2.token_url"
    assert "plain http is allowed only towards a loopback address" in str(caught.value)


def test_wrong_secret_names_code_and_fix(oauth2_provider: IdentityProvider) -> None:
    client = oauth2_provider.add_client(MAILBOX)

    with pytest.raises(TokenRequestRejected) as caught:
        endpoint(oauth2_provider.token_url).request_token(
            client_fields(client.client_id, "wrong-secret")
        )

    error = caught.value
    assert error.error_code == "invalid_client"
    assert error.status == 401
    assert error.description == "AADSTS7000215: Invalid client secret"
    assert "invalid_client (AADSTS7000215: Invalid client secret)" in str(error)
    assert "not its secret ID" in str(error)
    assert "wrong-secret" not in str(error)
    assert error.project == "TDP2"
    assert error.token_url == oauth2_provider.token_url


def test_deleted_app_names_code_and_fix(oauth2_provider: IdentityProvider) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    oauth2_provider.revoke_client(client)

    with pytest.raises(TokenRequestRejected) as caught:
        endpoint(oauth2_provider.token_url).request_token(
            client_fields(client.client_id, client.secret)
        )

    assert caught.value.error_code == "unauthorized_client"
    assert "AADSTS700016" in str(caught.value)
    assert "check oauth2.client_id and oauth2.tenant" in str(caught.value)


def test_expired_refresh_token_fix(oauth2_provider: IdentityProvider) -> None:
    client = oauth2_provider.add_client(MAILBOX)
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": "rt-retired",
        "client_id": client.client_id,
        "client_secret": client.secret,
    }

    with pytest.raises(TokenRequestRejected) as caught:
        endpoint(oauth2_provider.token_url, flow=OAuth2Flow.REFRESH_TOKEN).request_token(fields)

    assert caught.value.error_code == "invalid_grant"
    assert "Trace ID" not in caught.value.description
    assert "write it into the refresh token file" in str(caught.value)


def test_unknown_error_code_gets_default_fix(oauth2_provider: IdentityProvider) -> None:
    oauth2_provider.override_reply(400, b'{"error": "temporarily_unavailable"}')

    with pytest.raises(TokenRequestRejected) as caught:
        endpoint(oauth2_provider.token_url).request_token({"grant_type": "client_credentials"})

    assert caught.value.description == ""
    assert "temporarily_unavailable." in str(caught.value)
    assert "[projects.mailbox.oauth2]" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (503, b"<html>Service Unavailable</html>", "HTTP 503 with a body that is not a JSON"),
        (200, b'{"token_type": "Bearer"}', "without access_token"),
        (200, b'{"access_token": "at-1", "token_type": "mac"}', "a token of type 'mac'"),
        (200, b'{"access_token": "at-1", "token_type": "Bearer", "expires_in": -5}', "-5"),
        (500, b'{"message": "internal"}', "HTTP 500 without an OAuth2 error"),
        (302, b"", "HTTP 302"),
    ],
)
def test_reply_without_token_is_invalid(
    oauth2_provider: IdentityProvider, status: int, body: bytes, detail: str
) -> None:
    oauth2_provider.override_reply(status, body)

    with pytest.raises(TokenResponseInvalid) as caught:
        endpoint(oauth2_provider.token_url).request_token({"grant_type": "client_credentials"})

    assert detail in str(caught.value)


def test_expires_in_as_string_accepted(oauth2_provider: IdentityProvider) -> None:
    oauth2_provider.override_reply(
        200, b'{"access_token": "at-1", "token_type": "bearer", "expires_in": "3599"}'
    )

    response = endpoint(oauth2_provider.token_url).request_token({})

    assert response.expires_in == 3599


def test_closed_port_is_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(TokenEndpointUnreachable) as caught:
        endpoint(f"http://127.0.0.1:{port}/token").request_token({})

    assert "Cannot reach the token endpoint" in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_silent_endpoint_times_out(silent_port: int) -> None:
    with pytest.raises(TokenEndpointUnreachable) as caught:
        endpoint(f"http://127.0.0.1:{silent_port}/token", timeout=0.5).request_token({})

    assert "did not reply within 0.5 seconds" in str(caught.value)


def test_untrusted_certificate_rejected(https_provider: tuple[IdentityProvider, Path]) -> None:
    provider, _ = https_provider
    client = provider.add_client(MAILBOX)

    with pytest.raises(TokenEndpointUnreachable) as caught:
        endpoint(provider.token_url).request_token(client_fields(client.client_id, client.secret))

    assert "is not trusted" in str(caught.value)
    assert "oauth2.ca_file" in str(caught.value)
    assert provider.token_requests() == []


def test_configured_ca_file_trusted(https_provider: tuple[IdentityProvider, Path]) -> None:
    provider, cert_file = https_provider
    client = provider.add_client(MAILBOX)

    response = endpoint(provider.token_url, ca_file=cert_file).request_token(
        client_fields(client.client_id, client.secret)
    )

    assert provider.token_url.startswith("https://")
    assert response.access_token in provider.issued_tokens()


def test_unreadable_ca_file_is_config_error(
    oauth2_provider: IdentityProvider, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        endpoint(oauth2_provider.token_url, ca_file=tmp_path / "absent.pem").request_token({})

    assert caught.value.key == "projects.mailbox.oauth2.ca_file"
