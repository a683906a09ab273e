"""``acuse poll`` and ``acuse check-config --live`` on a mailbox that signs in with OAuth2.

Each test writes a configuration whose project TDP2 reads a user of the OAuth2 Dovecot over TLS
with tokens from the test identity platform, and runs ``acuse`` in a child process.
"""

import base64
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from acuse.demo import SAMPLES_DIR
from tests.acuse_process import run_acuse
from tests.dovecot import DovecotServer, MailUser
from tests.oauth2_provider import AppRegistration, IdentityProvider


@dataclass(frozen=True)
class OAuth2Deployment:
    """A configuration whose project TDP2 signs in to ``user``'s mailbox as ``client``."""

    config: Path
    root: Path
    user: MailUser
    client: AppRegistration

    @property
    def database(self) -> Path:
        return self.root / "acuse.db"


def sample_messages() -> list[bytes]:
    return [path.read_bytes() for path in sorted((SAMPLES_DIR / "evidencias").glob("*.eml"))]


def oauth2_project(
    dovecot: DovecotServer,
    user: MailUser,
    oauth2_table: str,
    folder: str = "INBOX",
) -> str:
    return f"""
[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"

[projects.mailbox]
host = "{dovecot.host}"
port = {dovecot.imaps_port}
security = "tls"
ca_file = "{dovecot.ca_file}"
username = "{user.name}"
folder = "{folder}"
auth = "oauth2"
timeout = "20s"

[projects.mailbox.oauth2]
{oauth2_table}"""


def password_project(dovecot: DovecotServer, user: MailUser) -> str:
    return f"""
[[projects]]
code = "RSV1"
name = "Reserva del Valle"

[projects.mailbox]
host = "{dovecot.host}"
port = {dovecot.imap_port}
security = "plain"
username = "{user.name}"
password_file = "{user.password_file}"
"""


def client_credentials(provider: IdentityProvider, client: AppRegistration, root: Path) -> str:
    (root / "tdp2-client-secret").write_text(client.secret + "\n", encoding="utf-8")
    return f"""flow = "client_credentials"
client_id = "{client.client_id}"
client_secret_file = "tdp2-client-secret"
token_url = "{provider.token_url}"
"""


def write_config(root: Path, *projects: str) -> Path:
    config = root / "acuse.toml"
    header = '[database]\nurl = "sqlite:///acuse.db"\n\n[archive]\npath = "archive"\n'
    config.write_text(header + "".join(projects), encoding="utf-8")
    return config


@pytest.fixture
def deployment(
    tmp_path: Path,
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    oauth2_mail_user: MailUser,
) -> OAuth2Deployment:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    table = client_credentials(oauth2_provider, client, tmp_path)
    config = write_config(tmp_path, oauth2_project(dovecot_oauth2, oauth2_mail_user, table))
    return OAuth2Deployment(config, tmp_path, oauth2_mail_user, client)


def stored_messages(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM message").fetchone()[0])


def mailbox_health(database: Path, project: str) -> dict[str, object]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM mailbox_health WHERE project = ?", (project,)
        ).fetchone()
    return dict(row) if row is not None else {}


def test_poll_stores_evidence_with_xoauth2(
    deployment: OAuth2Deployment, dovecot_oauth2: DovecotServer
) -> None:
    messages = sample_messages()
    dovecot_oauth2.append(deployment.user, "INBOX", messages)

    result = run_acuse(deployment.config, "--lang", "en", "poll")

    assert result.returncode == 0, result.stderr
    assert f"TDP2 (INBOX): {len(messages)} messages read" in result.stdout
    assert stored_messages(deployment.database) == len(messages)


def test_check_config_live_reports_steps(deployment: OAuth2Deployment) -> None:
    result = run_acuse(deployment.config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 0, result.stderr
    assert "✓ TDP2: the OAuth2 secret files are readable." in result.stdout
    assert "✓ TDP2: obtained an access token from http://127.0.0.1:" in result.stdout
    assert "valid for 2 minutes." in result.stdout
    assert f"✓ TDP2: signed in to {deployment.user.name} at 127.0.0.1:" in result.stdout
    assert "with XOAUTH2." in result.stdout
    assert "✓ TDP2: folder INBOX has 0 messages." in result.stdout


def test_check_config_live_names_token_step(
    deployment: OAuth2Deployment, oauth2_provider: IdentityProvider
) -> None:
    oauth2_provider.revoke_client(deployment.client)

    result = run_acuse(deployment.config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 3
    assert "✗ TDP2: the token request failed: The token endpoint" in result.stderr
    assert "unauthorized_client (AADSTS700016" in result.stderr
    assert "signed in" not in result.stdout
    assert "login failed" not in result.stderr


def test_check_config_live_names_login_step(
    tmp_path: Path, oauth2_provider: IdentityProvider, dovecot_oauth2: DovecotServer
) -> None:
    reader, other = dovecot_oauth2.create_user(), dovecot_oauth2.create_user()
    client = oauth2_provider.add_client(other.name)
    table = client_credentials(oauth2_provider, client, tmp_path)
    config = write_config(tmp_path, oauth2_project(dovecot_oauth2, reader, table))

    result = run_acuse(config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 3
    assert "✓ TDP2: obtained an access token" in result.stdout
    assert "✗ TDP2: the XOAUTH2 login failed:" in result.stderr
    assert "folder INBOX has" not in result.stdout


def test_check_config_live_names_folder_step(
    tmp_path: Path,
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    oauth2_mail_user: MailUser,
) -> None:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    table = client_credentials(oauth2_provider, client, tmp_path)
    project = oauth2_project(dovecot_oauth2, oauth2_mail_user, table, folder="Evidencias")
    config = write_config(tmp_path, project)

    result = run_acuse(config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 3
    assert "with XOAUTH2." in result.stdout
    assert "✗ TDP2: the folder selection failed: Folder 'Evidencias' does not exist" in (
        result.stderr
    )


def test_check_config_names_missing_secret(deployment: OAuth2Deployment) -> None:
    (deployment.root / "tdp2-client-secret").unlink()

    result = run_acuse(deployment.config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert "projects[TDP2].mailbox.oauth2.client_secret_file" in result.stderr


def test_revoked_client_one_failure_streak(
    tmp_path: Path,
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    dovecot: DovecotServer,
) -> None:
    oauth2_user, password_user = dovecot_oauth2.create_user(), dovecot.create_user()
    client = oauth2_provider.add_client(oauth2_user.name)
    table = client_credentials(oauth2_provider, client, tmp_path)
    config = write_config(
        tmp_path,
        oauth2_project(dovecot_oauth2, oauth2_user, table),
        password_project(dovecot, password_user),
    )
    dovecot.append(password_user, "INBOX", sample_messages())
    oauth2_provider.revoke_client(client)

    first = run_acuse(config, "--lang", "en", "poll", "--no-reconcile")
    after_first = mailbox_health(tmp_path / "acuse.db", "TDP2")
    second = run_acuse(config, "--lang", "en", "poll", "--no-reconcile")
    after_second = mailbox_health(tmp_path / "acuse.db", "TDP2")

    assert first.returncode == 3
    assert second.returncode == 3
    assert "unauthorized_client (AADSTS700016" in first.stderr
    assert f"RSV1 (INBOX): {len(sample_messages())} messages read" in first.stdout
    assert after_first["consecutive_failures"] == 1
    assert after_second["consecutive_failures"] == 2
    assert after_second["failing_since"] == after_first["failing_since"]
    assert "AADSTS700016" in str(after_second["last_error"])
    assert "oauth2.client_id and oauth2.tenant" in str(after_second["last_error"])
    assert mailbox_health(tmp_path / "acuse.db", "RSV1")["consecutive_failures"] == 0


def test_no_secret_in_any_log_line(
    tmp_path: Path,
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    oauth2_mail_user: MailUser,
) -> None:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    refresh_token = oauth2_provider.add_refresh_token(client)
    (tmp_path / "tdp2-refresh-token").write_text(refresh_token + "\n", encoding="utf-8")
    table = (
        client_credentials(oauth2_provider, client, tmp_path).replace(
            '"client_credentials"', '"refresh_token"'
        )
        + 'refresh_token_file = "tdp2-refresh-token"\nscope = "IMAP"\n'
    )
    config = write_config(tmp_path, oauth2_project(dovecot_oauth2, oauth2_mail_user, table))
    dovecot_oauth2.append(oauth2_mail_user, "INBOX", sample_messages()[:3])
    oauth2_provider.rotate_refresh_tokens()

    runs = [
        run_acuse(config, "--log-level", "debug", "poll"),
        run_acuse(config, "--log-level", "debug", "check-config", "--live"),
    ]
    oauth2_provider.revoke_client(client)
    runs.append(run_acuse(config, "--log-level", "debug", "poll"))

    output = "".join(run.stdout + run.stderr for run in runs)
    secrets = oauth2_provider.secrets_seen()
    sasl_responses = {
        base64.b64encode(f"user={oauth2_mail_user.name}\x01auth=Bearer {token}\x01\x01".encode())
        for token in oauth2_provider.issued_tokens()
    }
    assert [run.returncode for run in runs] == [0, 0, 3]
    assert "Access token obtained" in output
    assert "Refresh token rotated" in output
    assert len(secrets) >= 6
    assert [secret for secret in secrets if secret in output] == []
    assert [value for value in sasl_responses if value.decode() in output] == []
