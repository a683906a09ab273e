"""The command line in process: exit codes, one-line errors, formats and the demo."""

import csv
import io
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acuse.cli import main
from acuse.demo import DEMO_AS_OF, SAMPLES_DIR
from acuse.send_log_watch import SendLogImporter
from config.database import open_database, utcnow
from config.settings import load_settings, project_view
from monitor.leases import claim_mailboxes, register_instance
from reconcile.send_import import import_send_log

pytestmark = pytest.mark.both_engines

CONFIG = """
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"
reference_pattern = 'negocio (\\d+)'
"""


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


Run = Callable[..., Outcome]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*args: str) -> Outcome:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "acuse.toml"
    path.write_text(CONFIG.replace("sqlite:///acuse.db", db_url), encoding="utf-8")
    return path


@pytest.fixture
def loaded(run: Run, config: Path) -> Path:
    """A configuration whose database contains the demo's sends and evidence, reconciled."""
    run(
        "--config",
        str(config),
        "import-sends",
        str(SAMPLES_DIR / "envios-paco.csv"),
        "--project",
        "TDP2",
    )
    run("--config", str(config), "ingest", str(SAMPLES_DIR / "evidencias"), "--project", "TDP2")
    run("--config", str(config), "reconcile", "--as-of", DEMO_AS_OF)
    return config


def test_english_help(run: Run) -> None:
    outcome = run("--lang", "en", "--help")

    assert outcome.code == 0
    assert "Usage:" in outcome.stdout
    assert "unmatched" in outcome.stdout


def test_missing_config_is_usage_error(run: Run, tmp_path: Path) -> None:
    outcome = run("--lang", "en", "--config", str(tmp_path / "absent.toml"), "sends")

    assert outcome.code == 2
    assert outcome.stderr.count("\n") == 1
    assert "absent.toml" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_unknown_key_names_key(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "acuse.toml"
    path.write_text(CONFIG + 'colour = "blue"\n', encoding="utf-8")

    outcome = run("--lang", "en", "--config", str(path), "sends")

    assert outcome.code == 2
    assert "projects[0].colour" in outcome.stderr


def test_unknown_project_lists_known(run: Run, config: Path) -> None:
    outcome = run("--lang", "en", "--config", str(config), "sends", "--project", "XYZ")

    assert outcome.code == 2
    assert "'XYZ'" in outcome.stderr
    assert "TDP2" in outcome.stderr


def test_invalid_as_of_is_usage_error(run: Run, config: Path) -> None:
    outcome = run("--lang", "en", "--config", str(config), "sends", "--as-of", "yesterday")

    assert outcome.code == 2
    assert "'yesterday'" in outcome.stderr


def test_invalid_database_url_is_runtime_error(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "acuse.toml"
    path.write_text(CONFIG.replace("sqlite:///acuse.db", "nosuchdb://x"), encoding="utf-8")

    outcome = run("--lang", "en", "--config", str(path), "sends")

    assert outcome.code == 3
    assert "nosuchdb://x" in outcome.stderr


def test_empty_database_json_is_empty_list(run: Run, config: Path) -> None:
    outcome = run("--config", str(config), "sends", "--format", "json")

    assert outcome.code == 0
    assert json.loads(outcome.stdout) == []


def test_csv_keys_are_english_in_spanish(run: Run, loaded: Path) -> None:
    outcome = run(
        "--lang",
        "es",
        "--config",
        str(loaded),
        "unmatched",
        "--format",
        "csv",
        "--as-of",
        DEMO_AS_OF,
    )

    rows = list(csv.DictReader(io.StringIO(outcome.stdout)))
    assert outcome.code == 0
    assert {row["state"] for row in rows} == {
        "delivery_failed",
        "rejected",
        "missing",
        "not_copied",
        "ambiguous",
        "pending",
    }
    assert rows[0]["sent_at"].endswith("-05:00")


def test_state_filter(run: Run, loaded: Path) -> None:
    outcome = run(
        "--config",
        str(loaded),
        "sends",
        "--state",
        "missing",
        "--format",
        "json",
        "--as-of",
        DEMO_AS_OF,
    )

    rows = json.loads(outcome.stdout)
    assert [row["negocio"] for row in rows] == ["1075"]
    assert rows[0]["reason"].startswith("No evidence by the deadline")


def test_fail_on_problems(run: Run, loaded: Path) -> None:
    certified_only = run(
        "--config",
        str(loaded),
        "sends",
        "--state",
        "certified",
        "--fail-on-problems",
        "--as-of",
        DEMO_AS_OF,
    )
    with_problems = run(
        "--config", str(loaded), "unmatched", "--fail-on-problems", "--as-of", DEMO_AS_OF
    )

    assert certified_only.code == 0
    assert with_problems.code == 1


def test_as_of_before_deadline_is_pending(run: Run, loaded: Path) -> None:
    outcome = run(
        "--config",
        str(loaded),
        "sends",
        "--state",
        "pending",
        "--format",
        "json",
        "--as-of",
        "2026-11-03T15:00-05:00",
    )

    negocios = {row["negocio"] for row in json.loads(outcome.stdout)}
    assert "1075" in negocios
    assert "1090" not in negocios


def test_orphans_lists_unmatched_evidence(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "orphans", "--format", "json", "--as-of", DEMO_AS_OF)

    rows = json.loads(outcome.stdout)
    assert [row["certificate_id"] for row in rows] == ["LLD-20261103-000111"]


def test_show_includes_evidence(run: Run, loaded: Path) -> None:
    listed = json.loads(
        run("--config", str(loaded), "sends", "--format", "json", "--as-of", DEMO_AS_OF).stdout
    )
    failed = next(row for row in listed if row["state"] == "delivery_failed")

    outcome = run("--config", str(loaded), "show", str(failed["send_id"]), "--format", "json")

    record = json.loads(outcome.stdout)[0]
    assert record["evidence"]["kind"] == "delivery_failed"
    assert record["evidence"]["smtp_code"].startswith("550")


def test_show_unknown_send_is_usage_error(run: Run, loaded: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "show", "99999")

    assert outcome.code == 2
    assert "99999" in outcome.stderr


def test_status_counts_messages(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "status", "--format", "json")

    status = json.loads(outcome.stdout)[0]
    assert status["messages"] == 14
    assert status["quarantined"] == 1
    assert status["orphans"] == 1


def test_import_twice_adds_nothing(run: Run, loaded: Path) -> None:
    outcome = run(
        "--lang",
        "en",
        "--config",
        str(loaded),
        "import-sends",
        str(SAMPLES_DIR / "envios-paco.csv"),
        "--project",
        "TDP2",
    )

    assert outcome.code == 0
    assert "0 new sends, 14 already known" in outcome.stdout


def test_import_without_columns_names_them(run: Run, config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "envios.csv"
    bad.write_text("Nombre;Fecha\nAna;03/11/2026 10:00\n", encoding="utf-8")

    outcome = run(
        "--lang", "en", "--config", str(config), "import-sends", str(bad), "--project", "TDP2"
    )

    assert outcome.code == 3
    assert "Correo cliente" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_demo_shows_every_state(run: Run) -> None:
    outcome = run("--lang", "en", "demo")

    assert outcome.code == 0
    for label in (
        "certified",
        "delivery failed",
        "rejected",
        "not certified",
        "ambiguous",
        "pending",
    ):
        assert label in outcome.stdout
    assert "LLD-20261103-000111" in outcome.stdout


MAILBOX = """
[projects.mailbox]
host = "127.0.0.1"
username = "evidencias"
password_file = "imap.password"
"""


def test_status_shows_lease_holder(run: Run, config: Path, db_url: str) -> None:
    config.write_text(config.read_text(encoding="utf-8") + MAILBOX, encoding="utf-8")
    database = open_database(db_url)
    now = utcnow()
    register_instance(database, "acuse-1", "host-1", timedelta(minutes=1), now)
    claim_mailboxes(database, "acuse-1", [("TDP2", "INBOX")], timedelta(minutes=1), now)
    database.dispose()

    status = run("--config", str(config), "status", "--format", "json")
    listed = run("--config", str(config), "status", "--instances", "--format", "json")
    table = run("--lang", "en", "--config", str(config), "status", "--instances")

    record = json.loads(status.stdout)[0]
    assert record["lease_holder"] == "acuse-1"
    assert record["lease_expires_at"] is not None
    assert [item["instance"] for item in json.loads(listed.stdout)] == ["acuse-1"]
    assert "host-1" in table.stdout


def test_show_names_bounce_time(run: Run, loaded: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "show", "4", "--as-of", DEMO_AS_OF)

    assert outcome.code == 0, outcome.stderr
    headings = [line.split("  ")[0] for line in outcome.stdout.splitlines()]
    assert "Bounced" in headings
    assert "Delivered" not in headings


def test_show_names_delivery_time(run: Run, loaded: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "show", "1", "--as-of", DEMO_AS_OF)

    headings = [line.split("  ")[0] for line in outcome.stdout.splitlines()]
    assert "Delivered" in headings


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (["sends"], "No sends. Import a send log with 'acuse import-sends'."),
        (["sends", "--state", "missing"], "No sends in the state not certified."),
        (["unmatched"], "No sends without certification."),
        (["orphans"], "No orphan evidence."),
    ],
)
def test_empty_listing_prints_line(run: Run, config: Path, command: list[str], line: str) -> None:
    outcome = run("--lang", "en", "--config", str(config), *command)

    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.strip() == line


def test_state_help_lists_labels(run: Run) -> None:
    outcome = run("--lang", "en", "sends", "--help")

    text = " ".join(outcome.stdout.split())
    assert "missing (not certified" in text
    assert "not_copied (Lleida.net not in copy" in text


def test_logs_are_text_on_terminal(config: Path) -> None:
    command = [sys.executable, "-m", "acuse", "--config", str(config), "--log-level", "info"]
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [*command, "reconcile"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)

    log_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 0, result.stderr
    assert log_lines
    assert not any(line.lstrip().startswith("{") for line in log_lines)
    assert any(" INFO " in line for line in log_lines)


def test_preview_as_of_finds_demo_problem(run: Run, loaded: Path) -> None:
    preview = ("alerts", "preview", "delivery_failed", "--project", "TDP2", "--part", "text")

    outcome = run("--lang", "en", "--config", str(loaded), *preview, "--as-of", DEMO_AS_OF)

    assert outcome.code == 0, outcome.stderr
    assert "hernan.zuluaga@correo-inexistente.example" in outcome.stdout
    assert "invented example" not in outcome.stderr


def test_preview_names_lookback_when_none(run: Run, loaded: Path) -> None:
    preview = ("alerts", "preview", "delivery_failed", "--project", "TDP2", "--part", "text")

    outcome = run("--lang", "en", "--config", str(loaded), *preview, "--as-of", "2026-10-01")

    assert outcome.code == 0, outcome.stderr
    assert "invented example" in outcome.stderr
    assert "7d ([alerts] lookback)" in outcome.stderr
    assert "--as-of" in outcome.stderr


def test_import_all_rows_rejected_exit_3(run: Run, config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "envios.csv"
    bad.write_text(
        "Correo cliente;Fecha de envío;Asunto\nana@example.co;ayer;Hola\n;03/11/2026 10:00;Hola\n",
        encoding="utf-8",
    )

    outcome = run(
        "--lang", "en", "--config", str(config), "import-sends", str(bad), "--project", "TDP2"
    )

    assert outcome.code == 3
    assert "2 rows rejected" in outcome.stdout
    assert "no row of" in outcome.stderr


def test_import_unclosed_quote_exit_3(run: Run, config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "envios.csv"
    good = "".join(f"ana{number}@example.co;03/11/2026 10:00;Hola\n" for number in range(5))
    bad.write_text(
        'Cliente;Correo cliente;Fecha de envío;Asunto\n"Cliente 1;' + good, encoding="utf-8"
    )

    outcome = run(
        "--lang", "en", "--config", str(config), "import-sends", str(bad), "--project", "TDP2"
    )

    assert outcome.code == 3
    assert "never closed" in outcome.stderr
    assert "line 2" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_status_lists_failed_send_log(run: Run, tmp_path: Path, db_url: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    bad = logs / "aa-bad.csv"
    bad.write_text("Nombre;Fecha\nAna;03/11/2026 10:00\n", encoding="utf-8")
    (logs / "zz-new.csv").write_text(
        "Correo cliente;Fecha de envío;Asunto\nana@example.co;03/11/2026 10:00;Hola\n",
        encoding="utf-8",
    )
    for age, path in ((120, bad), (60, logs / "zz-new.csv")):
        os.utime(path, (time.time() - age, time.time() - age))
    config = tmp_path / "acuse.toml"
    text = (
        CONFIG.replace("sqlite:///acuse.db", db_url) + '[projects.send_log]\npath = "logs/*.csv"\n'
    )
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    database = open_database(settings.database_url)
    SendLogImporter(settings, database).import_new(project_view(settings, "TDP2"))
    database.dispose()

    outcome = run("--lang", "en", "--config", str(config), "status", "--format", "json")
    table = run("--lang", "en", "--config", str(config), "status")

    status = json.loads(outcome.stdout)[0]
    assert status["last_send_log_import_path"] == str((logs / "zz-new.csv").resolve())
    assert status["send_log_failures"] == 1
    (failed,) = status["send_log_failed_files"]
    assert failed["path"] == str(bad.resolve())
    assert "Correo cliente" in failed["reason"]
    assert "aa-bad.csv failed to import" in table.stderr


def test_status_counts_sends_dated_later(run: Run, config: Path, tmp_path: Path) -> None:
    path = tmp_path / "envios.csv"
    path.write_text(
        "Correo cliente;Fecha de envío;Asunto\nana@example.co;03/11/2098 10:00;Hola\n",
        encoding="utf-8",
    )
    settings = load_settings(config)
    database = open_database(settings.database_url)
    later = datetime(2098, 11, 3, 16, 0, tzinfo=UTC)
    import_send_log(database, path, project_view(settings, "TDP2"), later)
    database.dispose()

    outcome = run("--lang", "en", "--config", str(config), "status", "--format", "json")
    table = run("--lang", "en", "--config", str(config), "status")

    assert json.loads(outcome.stdout)[0]["sends_dated_later"] == 1
    assert "1 sends are dated later than now" in table.stderr
