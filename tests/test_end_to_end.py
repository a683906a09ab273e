"""From a real evidence mailbox to the list of uncertified sends, through the real command line.

Each test loads the demo's invented evidence into a fresh Dovecot user, writes a configuration
that points at it over TLS, and runs ``acuse`` in a child process.
"""

import json
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from acuse.demo import DEMO_AS_OF, SAMPLES_DIR
from monitor.archive import Archive
from monitor.crashpoints import CRASH_ENV, CRASH_EXIT_CODE, Step
from tests.acuse_process import run_acuse, spawn_acuse
from tests.dovecot import DovecotServer, MailUser
from tests.trust_pki import invented_pki

SEND_LOG = SAMPLES_DIR / "envios-paco.csv"
EXPECTED_STATES = {
    "1042": ["certified"],
    "1043": ["certified", "certified"],
    "1051": ["delivery_failed"],
    "1060": ["rejected"],
    "1064": ["certified"],
    "1066": ["certified"],
    "1070": ["certified"],
    "1072": ["certified"],
    "1075": ["missing"],
    "1080": ["not_copied"],
    "1101": ["ambiguous"],
    "1102": ["ambiguous"],
    "1090": ["pending"],
}


@dataclass(frozen=True)
class Deployment:
    """A configuration of one project whose evidence mailbox is a Dovecot user."""

    config: Path
    root: Path
    user: MailUser
    message_count: int

    @property
    def database(self) -> Path:
        return self.root / "acuse.db"

    @property
    def archive(self) -> Path:
        return self.root / "archive"


def sample_messages() -> list[bytes]:
    return [path.read_bytes() for path in sorted((SAMPLES_DIR / "evidencias").glob("*.eml"))]


def write_config(
    root: Path, dovecot: DovecotServer, user: MailUser, fetch_batch: int = 100
) -> Path:
    config = root / "acuse.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[defaults]
fetch_batch = {fetch_batch}

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"
managers = ["cartera@constructora.example"]
reference_pattern = 'negocio (\\d+)'

[projects.mailbox]
host = "{dovecot.host}"
port = {dovecot.imaps_port}
security = "tls"
username = "{user.name}"
password_file = "{user.password_file}"
ca_file = "{dovecot.ca_file}"
timeout = "20s"
""",
        encoding="utf-8",
    )
    return config


def deploy(
    tmp_path: Path,
    dovecot: DovecotServer,
    user: MailUser,
    messages: list[bytes],
    fetch_batch: int = 100,
) -> Deployment:
    dovecot.append(user, "INBOX", messages)
    config = write_config(tmp_path, dovecot, user, fetch_batch)
    return Deployment(config, tmp_path, user, len(messages))


@pytest.fixture
def deployment(tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser) -> Deployment:
    return deploy(tmp_path, dovecot, mail_user, sample_messages())


def ledger_hashes(deployment: Deployment) -> list[str]:
    with sqlite3.connect(deployment.database) as connection:
        return [row[0] for row in connection.execute("SELECT sha256 FROM message")]


def archive_hashes(deployment: Deployment) -> list[str]:
    return sorted(Archive(deployment.archive).stored_hashes())


def assert_stored_exactly_once(deployment: Deployment) -> None:
    hashes = ledger_hashes(deployment)
    duplicates = [sha for sha, seen in Counter(hashes).items() if seen > 1]
    assert duplicates == []
    assert len(hashes) == deployment.message_count
    assert archive_hashes(deployment) == sorted(hashes)
    with sqlite3.connect(deployment.database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def states_by_negocio(deployment: Deployment) -> dict[str, list[str]]:
    result = run_acuse(deployment.config, "sends", "--format", "json", "--as-of", DEMO_AS_OF)
    assert result.returncode == 0, result.stderr
    states: dict[str, list[str]] = {}
    for row in json.loads(result.stdout):
        states.setdefault(row["negocio"], []).append(row["state"])
    return states


def test_mailbox_to_uncertified_sends(deployment: Deployment) -> None:
    polled = run_acuse(deployment.config, "poll")
    imported = run_acuse(deployment.config, "import-sends", str(SEND_LOG), "--project", "TDP2")
    reconciled = run_acuse(deployment.config, "reconcile", "--as-of", DEMO_AS_OF)

    assert polled.returncode == 0, polled.stderr
    assert imported.returncode == 0, imported.stderr
    assert reconciled.returncode == 0, reconciled.stderr
    assert states_by_negocio(deployment) == EXPECTED_STATES


def test_json_rows_carry_stable_keys(deployment: Deployment) -> None:
    run_acuse(deployment.config, "poll")
    run_acuse(deployment.config, "import-sends", str(SEND_LOG), "--project", "TDP2")
    run_acuse(deployment.config, "reconcile", "--as-of", DEMO_AS_OF)

    result = run_acuse(
        deployment.config, "--lang", "es", "unmatched", "--format", "json", "--as-of", DEMO_AS_OF
    )

    rows = json.loads(result.stdout)
    failed = next(row for row in rows if row["negocio"] == "1051")
    assert failed["state"] == "delivery_failed"
    assert failed["sent_at"] == "2026-11-03T10:20:00-05:00"
    assert "550 5.1.1" in failed["reason"]
    assert failed["certificate_id"] == "LLD-20261103-000104"
    assert failed["evidence_id"] is not None
    assert {"project", "send_id", "recipient", "subject", "delivered_at"} <= set(failed)
    assert all(row["state"] != "certified" for row in rows)


def test_fail_on_problems_exit_code(deployment: Deployment) -> None:
    run_acuse(deployment.config, "poll")
    run_acuse(deployment.config, "import-sends", str(SEND_LOG), "--project", "TDP2")

    result = run_acuse(deployment.config, "unmatched", "--fail-on-problems", "--as-of", DEMO_AS_OF)

    assert result.returncode == 1


def test_second_poll_stores_nothing(deployment: Deployment) -> None:
    first = run_acuse(deployment.config, "poll")
    hashes_after_first = ledger_hashes(deployment)

    second = run_acuse(deployment.config, "--lang", "en", "poll")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "0 messages read" in second.stdout
    assert ledger_hashes(deployment) == hashes_after_first
    assert_stored_exactly_once(deployment)


def test_uidvalidity_change_stores_nothing_twice(
    deployment: Deployment, dovecot: DovecotServer
) -> None:
    run_acuse(deployment.config, "poll")
    new_uidvalidity = dovecot.change_uidvalidity(deployment.user, "INBOX")

    again = run_acuse(deployment.config, "--lang", "en", "poll")

    assert again.returncode == 0, again.stderr
    assert f"{deployment.message_count} messages read" in again.stdout
    assert f"{deployment.message_count} already stored" in again.stdout
    assert_stored_exactly_once(deployment)
    with sqlite3.connect(deployment.database) as connection:
        stored = connection.execute("SELECT uidvalidity FROM mailbox_cursor").fetchone()
    assert stored == (new_uidvalidity,)


INGEST_STEPS = [step for step in Step if not step.value.startswith("reprocess.")]
REPROCESS_STEPS = [step for step in Step if step.value.startswith("reprocess.")]
# Columns that a pass rewrites with the time it ran, even when it changes nothing else.
_RUN_TIMES = {"read_at", "updated_at", "last_attempt_at", "last_success_at"}


def database_snapshot(deployment: Deployment) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the ledger, evidence and cursor tables, without the times of the last run."""
    snapshot = {}
    with sqlite3.connect(deployment.database) as connection:
        for table in ("message", "evidence", "mailbox_cursor"):
            cursor = connection.execute(f"SELECT * FROM {table} ORDER BY 1")
            names = [column[0] for column in cursor.description]
            kept = [index for index, name in enumerate(names) if name not in _RUN_TIMES]
            snapshot[table] = [tuple(row[index] for index in kept) for row in cursor]
    return snapshot


def assert_invariants(deployment: Deployment) -> None:
    """Every message once in the archive and the ledger, which agree; a sound database."""
    assert_stored_exactly_once(deployment)
    verified = run_acuse(deployment.config, "archive", "verify")
    assert verified.returncode == 0, verified.stdout


def crash_env(step: Step, occurrence: int) -> dict[str, str]:
    return {**os.environ, CRASH_ENV: f"{step.number}:{occurrence}"}


@pytest.mark.parametrize("step", INGEST_STEPS, ids=lambda step: f"{step.number}-{step.value}")
def test_crash_at_each_step_of_poll(
    step: Step, tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    deployment = deploy(tmp_path, dovecot, mail_user, sample_messages(), fetch_batch=3)

    crashed = run_acuse(deployment.config, "poll", "--no-reconcile", env=crash_env(step, 2))
    resumed = run_acuse(deployment.config, "poll")
    before_settling = database_snapshot(deployment)
    settled = run_acuse(deployment.config, "--lang", "en", "poll")

    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "0 messages read" in settled.stdout
    assert database_snapshot(deployment) == before_settling
    assert_invariants(deployment)


def require_trust(deployment: Deployment) -> None:
    """Configure trust roots, so reprocessing turns the unsigned samples unverified."""
    root = invented_pki().ca.write_pem(deployment.root / "ca.pem")
    with deployment.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[providers.lleida]\ntrust_roots = ["{root}"]\ndkim_dns = false\n')


def verdicts_by_message(deployment: Deployment) -> dict[int, list[str]]:
    with sqlite3.connect(deployment.database) as connection:
        rows = connection.execute("SELECT message_pk, trust_verdict FROM evidence ORDER BY id")
        verdicts: dict[int, list[str]] = {}
        for message_pk, verdict in rows:
            verdicts.setdefault(message_pk, []).append(verdict)
    return verdicts


@pytest.mark.parametrize("step", REPROCESS_STEPS, ids=lambda step: f"{step.number}-{step.value}")
def test_crash_at_each_step_of_reprocess(
    step: Step, tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    deployment = deploy(tmp_path, dovecot, mail_user, sample_messages())
    run_acuse(deployment.config, "poll", "--no-reconcile")
    before = verdicts_by_message(deployment)
    require_trust(deployment)
    every_message = [str(number) for number in range(1, deployment.message_count + 1)]
    reprocess = ("reprocess", "--no-reconcile", *every_message)

    crashed = run_acuse(deployment.config, *reprocess, env=crash_env(step, 3))
    after_crash = verdicts_by_message(deployment)
    resumed = run_acuse(deployment.config, *reprocess)
    after_resume = database_snapshot(deployment)
    again = run_acuse(deployment.config, *reprocess)

    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert again.returncode == 0, again.stderr
    # Each message was replaced whole or not at all, and its evidence kept its rows.
    assert {number: len(rows) for number, rows in after_crash.items()} == {
        number: len(rows) for number, rows in before.items()
    }
    assert all(len(set(rows)) == 1 for rows in after_crash.values())
    assert after_crash != before
    assert set(verdicts_by_message(deployment)) == set(before)
    assert {v for rows in verdicts_by_message(deployment).values() for v in rows} == {"unverified"}
    assert database_snapshot(deployment) == after_resume
    assert_invariants(deployment)


def test_sigkill_mid_poll_loses_nothing(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    # Six distinct copies of each sample, so the poll runs long enough to be killed midway.
    many = [
        message.replace(b"Message-ID: <", f"X-Copy: {copy}\r\nMessage-ID: <".encode(), 1)
        for copy in range(6)
        for message in sample_messages()
    ]
    deployment = deploy(tmp_path, dovecot, mail_user, many, fetch_batch=5)

    process = spawn_acuse(deployment.config, "poll", "--no-reconcile")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if deployment.database.exists() and _message_count(deployment) >= 10:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    resumed = run_acuse(deployment.config, "poll")

    assert resumed.returncode == 0, resumed.stderr
    assert_stored_exactly_once(deployment)


def _message_count(deployment: Deployment) -> int:
    try:
        with sqlite3.connect(deployment.database, timeout=1) as connection:
            return int(connection.execute("SELECT count(*) FROM message").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
