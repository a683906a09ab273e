"""``acuse run`` raises alerts and emails them through a real SMTP server, once per problem."""

import time
from pathlib import Path

from tests.daemon_process import (
    dovecot_mailbox,
    project_toml,
    running_daemon,
    sample,
    wait_until,
    write_config,
)
from tests.dovecot import DovecotServer, MailUser
from tests.smtp_server import SmtpServer
from tests.test_daemon_run import stored_count, watched_send_log

MANAGER = "cartera@constructora.example"


def alert_sections(smtp_server: SmtpServer) -> str:
    # The samples were sent in November 2026, so the look-back must reach them.
    return f"""
[smtp]
host = "127.0.0.1"
port = {smtp_server.port}
security = "plain"
from = "Acuse <alertas@constructora.example>"

[alerts]
check_every = "2s"
group_window = "1s"
lookback = "3650d"
retry_first = "1s"
"""


def test_daemon_emails_missing_certifications(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    (tmp_path / "envios").mkdir()
    dovecot.append(mail_user, "INBOX", [sample("03-entrega-fallida-1051.eml")])
    extra = (
        f'managers = ["{MANAGER}"]\nlocale = "en"\n'
        '[projects.send_log]\npath = "envios/*.csv"\ninterval = "1s"\n'
    )
    config = write_config(
        tmp_path,
        project_toml("TDP2", dovecot_mailbox(dovecot, mail_user), extra),
        alert_sections(smtp_server),
    )

    with running_daemon(config, tmp_path) as daemon:
        # The send log appears once the evidence is stored, so the failed delivery of 1051 is
        # never judged missing first, whatever order the jobs run in.
        wait_until(lambda: stored_count(daemon.database, "TDP2") == 1, what="evidence stored")
        watched_send_log(tmp_path, make_folder=False)
        wait_until(lambda: len(smtp_server.messages) >= 3, what="alert emails")
        # Two more evaluation turns must not send the same alerts again.
        time.sleep(5)
        code = daemon.stop()

    subjects = sorted(message.subject for message in smtp_server.messages)
    assert code == 0
    assert all(MANAGER in message.email["To"] for message in smtp_server.messages)
    assert "[acuse] Proyecto TDP2: 12 sends not certified" in subjects
    assert "[acuse] Proyecto TDP2: 1 send not delivered" in subjects
    assert "[acuse] Proyecto TDP2: 1 send without Lleida.net in copy" in subjects
    assert len(subjects) == len(set(subjects))
