"""``acuse alerts`` through the real command line in a child process, on the real clock.

The SMTP server runs in the test process. The sends are dated relative to now, because the
child process judges them at its own current time.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.database import open_database
from config.settings import load_settings
from tests.acuse_process import run_acuse
from tests.alert_scenario import BOGOTA, SendSpec, import_sends
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.both_engines

CONFIG = """
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[smtp]
host = "127.0.0.1"
port = {port}
security = "plain"
from = "Acuse <alertas@constructora.example>"
timeout = "10s"

[alerts]
operators = ["operaciones@constructora.example"]

[alerts.kinds.evidence_silence]
enabled = false

[[projects]]
code = "TDP2"
name = "Torres del Parque"
timezone = "America/Bogota"
locale = "en"
managers = ["cartera@constructora.example"]
missing_after = "6h"

[projects.alerts]
digest = false
"""


@pytest.fixture
def config(tmp_path: Path, smtp_server: SmtpServer, db_url: str) -> Path:
    path = tmp_path / "acuse.toml"
    text = CONFIG.format(port=smtp_server.port).replace("sqlite:///acuse.db", db_url)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def missing_send(config: Path, tmp_path: Path) -> SendSpec:
    """A send logged seven hours ago that has no evidence, so it is past its deadline."""
    sent = (datetime.now(UTC) - timedelta(hours=7)).astimezone(BOGOTA).replace(second=0)
    spec = SendSpec("1075", "Fabio Londoño", "fabio.londono@correo.example", sent)
    settings = load_settings(config)
    database = open_database(settings.database_url)
    import_sends(database, settings, tmp_path, [spec], datetime.now(UTC))
    database.dispose()
    return spec


def test_send_now_delivers_alert(
    config: Path, missing_send: SendSpec, smtp_server: SmtpServer
) -> None:
    result = run_acuse(config, "--lang", "en", "alerts", "send-now")

    assert result.returncode == 0, result.stderr
    assert "1 raised" in result.stdout
    assert "1 sent" in result.stdout
    assert [message.subject for message in smtp_server.messages] == [
        "[acuse] Torres del Parque: 1 send not certified"
    ]


def test_send_now_twice_sends_once(
    config: Path, missing_send: SendSpec, smtp_server: SmtpServer
) -> None:
    first = run_acuse(config, "alerts", "send-now")
    second = run_acuse(config, "--lang", "en", "alerts", "send-now")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "0 raised" in second.stdout
    assert len(smtp_server.messages) == 1


def test_listing_as_json(config: Path, missing_send: SendSpec, smtp_server: SmtpServer) -> None:
    run_acuse(config, "alerts", "send-now")

    result = run_acuse(config, "alerts", "--format", "json")

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    assert rows[0]["kind"] == "certification_missing"
    assert rows[0]["project"] == "TDP2"
    assert rows[0]["details"]["client"] == "Fabio Londoño"
    assert rows[0]["opened_at"].endswith("-05:00")
    assert rows[0]["resolved_at"] is None


def test_listing_table_in_spanish(
    config: Path, missing_send: SendSpec, smtp_server: SmtpServer
) -> None:
    run_acuse(config, "alerts", "send-now")

    result = run_acuse(config, "--lang", "es", "alerts", "--all")

    assert result.returncode == 0, result.stderr
    assert "Fabio Londoño" in result.stdout
    assert "TDP2" in result.stdout


def test_preview_prints_subject(
    config: Path, missing_send: SendSpec, smtp_server: SmtpServer
) -> None:
    result = run_acuse(
        config,
        "alerts",
        "preview",
        "certification_missing",
        "--project",
        "TDP2",
        "--part",
        "subject",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[acuse] Torres del Parque: 1 send not certified"
    assert smtp_server.messages == []


def test_preview_without_problem_shows_example(config: Path, smtp_server: SmtpServer) -> None:
    result = run_acuse(
        config, "--lang", "en", "alerts", "preview", "delivery_failed", "--project", "TDP2"
    )

    assert result.returncode == 0, result.stderr
    assert "invented example" in result.stderr
    assert "550 5.1.1" in result.stdout


def test_test_email_reaches_managers(config: Path, smtp_server: SmtpServer) -> None:
    result = run_acuse(config, "alerts", "test", "--project", "TDP2")

    assert result.returncode == 0, result.stderr
    assert [message.rcpt_tos for message in smtp_server.messages] == [
        ["cartera@constructora.example"]
    ]
    assert smtp_server.messages[0].subject == "[acuse] Torres del Parque: test email"


def test_test_email_with_server_down(config: Path, smtp_server: SmtpServer) -> None:
    smtp_server.stop()

    result = run_acuse(config, "--lang", "en", "alerts", "test", "--project", "TDP2")

    assert result.returncode == 3
    assert "stays in the outbox" in result.stderr


def test_status_counts_open_alerts(
    config: Path, missing_send: SendSpec, smtp_server: SmtpServer
) -> None:
    run_acuse(config, "alerts", "send-now")

    result = run_acuse(config, "status", "--format", "json")

    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]
    assert record["open_alerts"] == 1
    assert record["alert_emails_waiting"] == 0
    assert record["alert_delivery_failing_since"] is None


def test_check_config_reaches_smtp(config: Path, smtp_server: SmtpServer) -> None:
    result = run_acuse(config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 0, result.stderr
    assert f"Connected to the SMTP server 127.0.0.1:{smtp_server.port}" in result.stdout
    assert "without logging in" in result.stdout
    assert "logged in as" not in result.stdout


def remove_smtp(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    start = text.index("[smtp]")
    config.write_text(text[:start] + text[text.index("[alerts]") :], encoding="utf-8")


def test_check_config_warns_without_smtp(config: Path) -> None:
    remove_smtp(config)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert "No [smtp] section" in result.stderr
    assert "cartera@constructora.example" in result.stderr


def test_status_warns_without_smtp(config: Path) -> None:
    remove_smtp(config)

    result = run_acuse(config, "--lang", "en", "status")

    assert result.returncode == 0, result.stderr
    assert "No [smtp] section" in result.stderr


def test_check_config_reports_smtp_down(config: Path, smtp_server: SmtpServer) -> None:
    smtp_server.stop()

    result = run_acuse(config, "--lang", "en", "check-config", "--live")

    assert result.returncode == 3
    assert "Cannot connect to the SMTP server" in result.stderr
