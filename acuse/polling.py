"""A poll of a project's mailbox with its health recorded, shared by ``acuse poll`` and the daemon.

Every outcome lands in ``mailbox_health``: a success ends the streak of failures, and any
AcuseError (a missing password file, a refused login, a timeout) is recorded with its message
and then raised again, so the caller decides whether to print it or retry later.
"""

from collections.abc import Callable
from dataclasses import dataclass

from acuse.checks import mailbox_password
from config.database import Database, utcnow
from config.errors import AcuseError
from config.settings import ProjectView, Settings
from monitor.archive import Archive
from monitor.imap_source import ImapSource
from monitor.mailbox_health import record_poll_failure, record_poll_success
from monitor.mailbox_poll import PollResult, poll_mailbox

ErrorText = Callable[[AcuseError], str]


def mailbox_folder(project: ProjectView) -> str:
    """The folder of the project's mailbox; the project must have one."""
    mailbox = project.settings.mailbox
    assert mailbox is not None
    return mailbox.folder


@dataclass(frozen=True)
class MailboxPoller:
    """Polls project mailboxes into one database and archive, recording each poll's health."""

    settings: Settings
    database: Database
    archive: Archive

    def open_source(self, project: ProjectView) -> ImapSource:
        """Build the project's IMAP source with the password from its secret file."""
        password = mailbox_password(self.settings, project)
        return ImapSource.for_project(self.settings, project, password)

    def poll_once(
        self,
        project: ProjectView,
        *,
        should_continue: Callable[[], bool] | None = None,
        on_source: Callable[[ImapSource], None] | None = None,
        error_text: ErrorText = str,
    ) -> PollResult:
        """Connect to the project's mailbox, poll it, log out and record the outcome.

        ``on_source`` receives the source before it connects, so a supervisor can abort it.
        ``error_text`` words a failure for the health record, for example to say that the
        daemon cut the poll short at its time limit.
        """
        try:
            source = self.open_source(project)
        except AcuseError as exc:
            self.record_failure(project, mailbox_folder(project), error_text(exc))
            raise
        if on_source is not None:
            on_source(source)
        try:
            return self.poll_connected(
                project, source, should_continue=should_continue, error_text=error_text
            )
        finally:
            source.close()

    def poll_connected(
        self,
        project: ProjectView,
        source: ImapSource,
        *,
        should_continue: Callable[[], bool] | None = None,
        error_text: ErrorText = str,
    ) -> PollResult:
        """Connect the source unless it is connected, poll it and record the outcome."""
        folder = source.mailbox.folder
        try:
            source.connect()
            result = poll_mailbox(self.database, self.archive, project, source, should_continue)
        except AcuseError as exc:
            self.record_failure(project, folder, error_text(exc))
            raise
        record_poll_success(self.database, project.code, folder, result.counts.stored, utcnow())
        return result

    def record_failure(self, project: ProjectView, folder: str, error: str) -> None:
        """Record a failed poll of the project's folder."""
        record_poll_failure(self.database, project.code, folder, error, utcnow())
