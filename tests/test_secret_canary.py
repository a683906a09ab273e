"""A canary password never reaches a log line, a message or the database, even when logins fail.

The password file holds a canary that Dovecot rejects, or that a failed TLS handshake never
sends. Every line that ``acuse poll``, ``acuse status`` and ``acuse run`` write at debug level
is searched for it, and so is every byte of the SQLite database and its WAL.
"""

from pathlib import Path

import pytest

from tests.acuse_process import run_acuse
from tests.daemon_process import (
    dovecot_mailbox,
    project_toml,
    running_daemon,
    wait_until,
    write_config,
)
from tests.dovecot import DovecotServer, MailUser

CANARY = "canary-pw-7d41c0ffee"


def canary_file(root: Path) -> Path:
    path = root / "mailbox.password"
    path.write_text(CANARY + "\n", encoding="utf-8")
    return path


def failing_projects(root: Path, dovecot: DovecotServer, user: MailUser) -> str:
    password_file = str(canary_file(root))
    wrong_password = dovecot_mailbox(dovecot, user, password_file=password_file)
    # TLS on the TLS port without the test CA: the certificate check fails before LOGIN.
    untrusted = dovecot_mailbox(
        dovecot, user, security="tls", port=dovecot.imaps_port, password_file=password_file
    )
    return project_toml("CLAVE", wrong_password) + project_toml("TLS", untrusted)


def database_bytes(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.glob("acuse.db*")))


@pytest.fixture
def config(tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser) -> Path:
    return write_config(tmp_path, failing_projects(tmp_path, dovecot, mail_user))


def test_poll_failures_hide_canary(config: Path, tmp_path: Path) -> None:
    polled = run_acuse(config, "--log-level", "debug", "--lang", "en", "poll")
    status = run_acuse(config, "status", "--format", "json")

    assert polled.returncode == 3
    assert "rejected the login" in polled.stderr
    assert "not trusted" in polled.stderr
    assert CANARY not in polled.stdout + polled.stderr
    assert CANARY not in status.stdout + status.stderr
    assert "rejected the login" in status.stdout
    assert CANARY.encode() not in database_bytes(tmp_path)


def test_run_failures_hide_canary(config: Path, tmp_path: Path) -> None:
    with running_daemon(config, tmp_path, "--log-level", "debug", "--lang", "en") as daemon:
        wait_until(lambda: len(daemon.logged("job failed; retrying later")) >= 2, what="failures")
        code = daemon.stop()

    failures = daemon.logged("job failed; retrying later")
    assert code == 0
    assert {entry["project"] for entry in failures} == {"CLAVE", "TLS"}
    assert daemon.output
    assert all(CANARY not in line for line in daemon.output)
    assert all(CANARY not in str(message) for message in daemon.notify.messages)
    assert CANARY.encode() not in database_bytes(tmp_path)
