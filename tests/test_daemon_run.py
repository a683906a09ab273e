"""``acuse run`` in a child process against the session's Dovecot, reporting to a test socket.

Intervals are two seconds, and WATCHDOG_USEC asks for a watchdog ping every second.
"""

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acuse.demo import SAMPLES_DIR
from tests.acuse_process import run_acuse
from tests.daemon_process import (
    dovecot_mailbox,
    login_hanging_server,
    project_toml,
    query,
    running_daemon,
    sample,
    silent_server,
    wait_until,
    write_config,
)
from tests.dovecot import DovecotServer, MailUser, _find_programs

INTERVAL = timedelta(seconds=2)
FALLBACK_MESSAGE = "server lacks IDLE; polling the mailbox every poll interval instead"
SEND_LOG_EXTRA = '[projects.send_log]\npath = "envios/*.csv"\n'


def stored_count(database: Path, project: str) -> int:
    rows = query(database, "SELECT count(*) FROM message WHERE project = ?", project)
    return int(rows[0][0])


def send_states(database: Path, negocio: str) -> list[str]:
    rows = query(database, "SELECT state FROM send WHERE negocio = ?", negocio)
    return [row[0] for row in rows]


def stored_at(database: Path, project: str) -> datetime:
    rows = query(database, "SELECT min(stored_at) FROM message WHERE project = ?", project)
    return datetime.fromisoformat(rows[0][0]).replace(tzinfo=UTC)


def watched_send_log(root: Path, *, make_folder: bool = True) -> None:
    folder = root / "envios"
    if make_folder:
        folder.mkdir()
    target = folder / "envios-paco.csv"
    shutil.copy(SAMPLES_DIR / "envios-paco.csv", target)
    # An export written a minute ago has settled; a fresh one waits for the next turn.
    past = time.time() - 60
    os.utime(target, (past, past))


def status_rows(config: Path) -> dict[str, dict[str, object]]:
    result = run_acuse(config, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["project"]: row for row in json.loads(result.stdout)}


def test_run_stores_and_reconciles(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    watched_send_log(tmp_path)
    mailbox = dovecot_mailbox(dovecot, mail_user)
    config = write_config(tmp_path, project_toml("TDP2", mailbox, SEND_LOG_EXTRA))

    with running_daemon(config, tmp_path) as daemon:
        wait_until(lambda: send_states(daemon.database, "1042") == ["missing"], what="import")
        appended_at = datetime.now(UTC)
        dovecot.append(mail_user, "INBOX", [sample("01-certificado-1042.eml")])
        wait_until(lambda: send_states(daemon.database, "1042") == ["certified"], what="reconciled")
        daemon.notify.wait_for_field("WATCHDOG")
        daemon.notify.wait_for_field("WATCHDOG")
        code = daemon.stop()

    assert code == 0
    assert stored_at(daemon.database, "TDP2") - appended_at <= 2 * INTERVAL
    assert daemon.notify.count("STOPPING") == 1
    assert daemon.notify.count("WATCHDOG") >= 2
    assert daemon.logged("daemon started")
    assert daemon.logged("daemon stopped")
    assert daemon.logged("mailbox polled")
    assert daemon.logged("reconciliation pass finished")


def test_status_line_after_pass(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    config = write_config(tmp_path, project_toml("TDP2", dovecot_mailbox(dovecot, mail_user)))

    with running_daemon(config, tmp_path, "--lang", "en") as daemon:
        message = daemon.notify.wait_for(
            lambda fields: "job poll:TDP2 succeeded" in fields.get("STATUS", "")
        )
        daemon.stop()

    assert message["STATUS"].startswith("1 of 1 mailbox polled without error")


def test_sighup_adds_project(tmp_path: Path, dovecot: DovecotServer) -> None:
    first, second = dovecot.create_user(), dovecot.create_user()
    dovecot.append(second, "INBOX", [sample("06-certificate-english-1066.eml")])
    one = project_toml("TDP2", dovecot_mailbox(dovecot, first))
    config = write_config(tmp_path, one)

    with running_daemon(config, tmp_path) as daemon:
        wait_until(lambda: daemon.logged("mailbox polled"), what="first poll")
        write_config(tmp_path, one + project_toml("TDP3", dovecot_mailbox(dovecot, second)))
        daemon.signal(signal.SIGHUP)
        daemon.notify.wait_for_field("RELOADING")
        daemon.notify.wait_for_field("READY")
        wait_until(lambda: stored_count(daemon.database, "TDP3") == 1, what="TDP3 stored")
        code = daemon.stop()

    assert code == 0
    reloaded = daemon.logged("configuration reloaded")
    assert reloaded[0]["added"] == 2
    assert reloaded[0]["removed"] == 0


def test_sighup_keeps_old_config_on_error(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    config = write_config(tmp_path, project_toml("TDP2", dovecot_mailbox(dovecot, mail_user)))

    with running_daemon(config, tmp_path) as daemon:
        config.write_text("[[projects]]\ncode = \n", encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        wait_until(
            lambda: daemon.logged(
                "configuration reload failed; the previous configuration stays in force"
            ),
            what="reload error",
        )
        dovecot.append(mail_user, "INBOX", [sample("01-certificado-1042.eml")])
        wait_until(lambda: stored_count(daemon.database, "TDP2") == 1, what="stored")
        code = daemon.stop()

    assert code == 0


def test_silent_server_delays_nothing(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    with silent_server() as (host, port):
        silent = {
            "host": host,
            "port": port,
            "security": "plain",
            "username": "nadie",
            "password_file": str(mail_user.password_file),
            "timeout": "3s",
        }
        projects = project_toml("MUDO", silent) + project_toml(
            "TDP2", dovecot_mailbox(dovecot, mail_user)
        )
        config = write_config(tmp_path, projects)

        with running_daemon(config, tmp_path, "--lang", "en") as daemon:
            appended_at = datetime.now(UTC)
            dovecot.append(mail_user, "INBOX", [sample("01-certificado-1042.eml")])
            wait_until(lambda: stored_count(daemon.database, "TDP2") == 1, what="TDP2 stored")
            wait_until(lambda: bool(daemon.logged("job failed; retrying later")), what="failure")
            rows = status_rows(config)
            code = daemon.stop()

    assert code == 0
    assert stored_at(daemon.database, "TDP2") - appended_at <= 2 * INTERVAL
    assert rows["MUDO"]["consecutive_failures"] >= 1
    assert "did not reply" in str(rows["MUDO"]["last_error"])
    assert rows["MUDO"]["last_success_at"] is None
    assert rows["TDP2"]["consecutive_failures"] == 0
    assert rows["TDP2"]["last_success_at"] is not None


def test_hung_poll_aborted_at_limit(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    with login_hanging_server() as (host, port):
        stuck = {
            "host": host,
            "port": port,
            "security": "plain",
            "username": "nadie",
            "password_file": str(mail_user.password_file),
            "timeout": "120s",
        }
        config = write_config(tmp_path, project_toml("LENTO", stuck), defaults='job_timeout = "3s"')

        with running_daemon(config, tmp_path, "--lang", "en") as daemon:
            wait_until(
                lambda: bool(daemon.logged("job exceeded its time limit and is aborted")),
                what="abort",
            )
            wait_until(lambda: bool(daemon.logged("job failed; retrying later")), what="failure")
            rows = status_rows(config)
            pings_before = daemon.notify.count("WATCHDOG")
            wait_until(lambda: daemon.notify.count("WATCHDOG") > pings_before, what="ping")
            code = daemon.stop()

    assert code == 0
    assert rows["LENTO"]["consecutive_failures"] >= 1
    assert "time limit" in str(rows["LENTO"]["last_error"])


def test_sigterm_mid_poll_leaves_nothing_half_written(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    messages = [
        sample("01-certificado-1042.eml").replace(
            b"Message-ID: <", f"X-Copy: {copy}\r\nMessage-ID: <".encode(), 1
        )
        for copy in range(300)
    ]
    dovecot.append(mail_user, "INBOX", messages)
    config = write_config(
        tmp_path,
        project_toml("TDP2", dovecot_mailbox(dovecot, mail_user)),
        defaults="fetch_batch = 5",
    )

    with running_daemon(config, tmp_path) as daemon:
        wait_until(lambda: stored_count(daemon.database, "TDP2") >= 10, what="first batches")
        code = daemon.stop()
    stored_at_stop = stored_count(daemon.database, "TDP2")
    resumed = run_acuse(config, "poll", "--no-reconcile")

    archive = tmp_path / "archive"
    blobs = sorted(path.stem for path in archive.rglob("*.eml") if not path.name.startswith("."))
    ledger = sorted(row[0] for row in query(daemon.database, "SELECT sha256 FROM message"))
    assert code == 0
    assert stored_at_stop < len(messages)
    assert daemon.logged("mailbox polled")[-1]["stopped_early"] is True
    assert resumed.returncode == 0, resumed.stderr
    assert ledger == blobs
    assert len(ledger) == len(messages)
    assert list(archive.rglob(".tmp-*")) == []
    assert query(daemon.database, "PRAGMA integrity_check") == [("ok",)]


def test_idle_mailbox_ingests_at_once(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    mailbox = dovecot_mailbox(dovecot, mail_user, idle=True, idle_renew="5s")
    config = write_config(tmp_path, project_toml("TDP2", mailbox, 'poll_interval = "1h"'))

    with running_daemon(config, tmp_path) as daemon:
        wait_until(lambda: bool(daemon.logged("IDLE connection open")), what="IDLE")
        dovecot.append(mail_user, "INBOX", [sample("01-certificado-1042.eml")])
        wait_until(lambda: stored_count(daemon.database, "TDP2") == 1, what="stored over IDLE")
        code = daemon.stop()

    assert code == 0
    assert daemon.logged("IDLE watcher stopped")


class DovecotWithoutIdle(DovecotServer):
    """A Dovecot that leaves IDLE out of the capabilities it announces."""

    def _write_config(self) -> None:
        super()._write_config()
        with self.config_file.open("a", encoding="utf-8") as config:
            capabilities = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS MULTIAPPEND"
            config.write(f"imap_capability = {capabilities}\n")


@pytest.fixture(scope="module")
def dovecot_without_idle(dovecot: DovecotServer) -> Iterator[DovecotServer]:
    root = Path(tempfile.mkdtemp(prefix="acuse-dovecot-noidle-"))
    root.chmod(0o755)
    server = DovecotWithoutIdle(root, *_find_programs())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_idle_falls_back_to_polling(tmp_path: Path, dovecot_without_idle: DovecotServer) -> None:
    user = dovecot_without_idle.create_user()
    mailbox = dovecot_mailbox(dovecot_without_idle, user, idle=True)
    config = write_config(tmp_path, project_toml("TDP2", mailbox))

    with running_daemon(config, tmp_path) as daemon:
        wait_until(
            lambda: bool(daemon.logged(FALLBACK_MESSAGE)),
            what="fallback",
        )
        dovecot_without_idle.append(user, "INBOX", [sample("01-certificado-1042.eml")])
        wait_until(lambda: stored_count(daemon.database, "TDP2") == 1, what="stored by polls")
        code = daemon.stop()

    assert code == 0
    assert not daemon.logged("IDLE connection open")
