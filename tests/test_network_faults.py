"""Network faults between acuse and Dovecot: a connection cut at each response boundary of a
poll, and a server that stops answering. Nothing is lost or stored twice, the next pass
recovers, and a hang ends with the socket timeout."""

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from acuse.demo import SAMPLES_DIR
from monitor.archive import Archive, sha256_hex
from tests.acuse_process import run_acuse
from tests.dovecot import DovecotServer, MailUser
from tests.tcp_proxy import Fault, FaultProxy

FETCH_BATCH = 4
TIMEOUT_SECONDS = 2
# Greeting, LOGIN, EXAMINE, SEARCH, four FETCH batches of the 14 samples, LOGOUT; imapclient
# may add a CAPABILITY. A cut after the last one (LOGOUT) harms nothing, so every point
# before it is cut.
CUT_POINTS = range(1, 10)


def samples() -> list[bytes]:
    return [path.read_bytes() for path in sorted((SAMPLES_DIR / "evidencias").glob("*.eml"))]


def write_config(root: Path, dovecot: DovecotServer, user: MailUser, port: int) -> Path:
    config = root / "acuse.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[defaults]
fetch_batch = {FETCH_BATCH}

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"

[projects.mailbox]
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user.name}"
password_file = "{user.password_file}"
timeout = "{TIMEOUT_SECONDS}s"
""",
        encoding="utf-8",
    )
    return config


def server_hashes(dovecot: DovecotServer, user: MailUser) -> list[str]:
    with dovecot.connect(user) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[]"])
    return sorted(sha256_hex(items[b"BODY[]"]) for items in fetched.values())


def assert_stored_exactly_once(root: Path, expected: list[str]) -> None:
    with sqlite3.connect(root / "acuse.db") as connection:
        ledger = [row[0] for row in connection.execute("SELECT sha256 FROM message")]
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [sha for sha, seen in Counter(ledger).items() if seen > 1] == []
    assert sorted(ledger) == expected
    assert sorted(Archive(root / "archive").stored_hashes()) == expected


@pytest.fixture
def mailbox(dovecot: DovecotServer, mail_user: MailUser) -> list[str]:
    dovecot.append(mail_user, "INBOX", samples())
    return server_hashes(dovecot, mail_user)


def test_poll_through_proxy_counts_boundaries(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser, mailbox: list[str]
) -> None:
    with FaultProxy(dovecot.imap_port) as proxy:
        config = write_config(tmp_path, dovecot, mail_user, proxy.port)
        polled = run_acuse(config, "poll", "--no-reconcile")

    assert polled.returncode == 0, polled.stderr
    assert proxy.boundaries > max(CUT_POINTS)
    assert_stored_exactly_once(tmp_path, mailbox)


@pytest.mark.parametrize("cut_after", CUT_POINTS)
def test_cut_at_boundary_loses_nothing(
    cut_after: int,
    tmp_path: Path,
    dovecot: DovecotServer,
    mail_user: MailUser,
    mailbox: list[str],
) -> None:
    with FaultProxy(dovecot.imap_port, Fault.CUT, cut_after) as proxy:
        config = write_config(tmp_path, dovecot, mail_user, proxy.port)
        cut = run_acuse(config, "--lang", "en", "poll", "--no-reconcile")
    write_config(tmp_path, dovecot, mail_user, dovecot.imap_port)
    resumed = run_acuse(config, "poll", "--no-reconcile")
    settled = run_acuse(config, "--lang", "en", "poll", "--no-reconcile")

    assert proxy.faulted.is_set()
    assert cut.returncode == 3, cut.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert "0 messages read" in settled.stdout
    assert_stored_exactly_once(tmp_path, mailbox)


@pytest.mark.parametrize("stall_after", [0, 2, 5])
def test_stalled_server_times_out_and_recovers(
    stall_after: int,
    tmp_path: Path,
    dovecot: DovecotServer,
    mail_user: MailUser,
    mailbox: list[str],
) -> None:
    with FaultProxy(dovecot.imap_port, Fault.STALL, stall_after) as proxy:
        config = write_config(tmp_path, dovecot, mail_user, proxy.port)
        # The subprocess limit fails the test if the socket timeout does not end the hang.
        stalled = run_acuse(config, "--lang", "en", "poll", "--no-reconcile", timeout=60)
    write_config(tmp_path, dovecot, mail_user, dovecot.imap_port)
    resumed = run_acuse(config, "poll", "--no-reconcile")

    assert proxy.faulted.is_set()
    assert stalled.returncode == 3
    assert "did not reply" in stalled.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert_stored_exactly_once(tmp_path, mailbox)


def test_renumbered_uids_store_nothing_twice(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser, mailbox: list[str]
) -> None:
    config = write_config(tmp_path, dovecot, mail_user, dovecot.imap_port)
    run_acuse(config, "poll", "--no-reconcile")
    uidvalidity = dovecot.uidvalidity(mail_user, "INBOX")
    with dovecot.connect(mail_user) as client:
        client.select_folder("INBOX")
        old_uids = client.search(["ALL"])
    dovecot.append(mail_user, "INBOX", list(reversed(samples())))
    dovecot.expunge(mail_user, "INBOX", old_uids)

    again = run_acuse(config, "--lang", "en", "poll", "--no-reconcile")

    assert dovecot.uidvalidity(mail_user, "INBOX") == uidvalidity
    assert again.returncode == 0, again.stderr
    assert f"{len(mailbox)} already stored" in again.stdout
    assert_stored_exactly_once(tmp_path, mailbox)
