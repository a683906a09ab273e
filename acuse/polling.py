"""A poll of a project's mailbox with its health recorded, shared by ``acuse poll`` and the daemon.

Every outcome lands in ``mailbox_health``: a success ends the streak of failures, and any
AcuseError (a missing password file, a refused login, a timeout) is recorded with its message
and then raised again, so the caller decides whether to print it or retry later.

The daemon keeps each mailbox's connection logged in between polls, with the folder selected
(``MailboxConnections``), so a poll of an idle mailbox costs one round trip.
"""

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from config.database import Database, utcnow
from config.errors import AcuseError
from config.secrets import mailbox_password
from config.settings import ProjectView, Settings
from monitor.archive import Archive
from monitor.imap_source import ImapSource
from monitor.mailbox_health import record_poll_failure, record_poll_success
from monitor.mailbox_poll import PollResult, poll_mailbox

log = logging.getLogger(__name__)

ErrorText = Callable[[AcuseError], str]


def mailbox_folder(project: ProjectView) -> str:
    """The folder of the project's mailbox; the project must have one."""
    mailbox = project.settings.mailbox
    assert mailbox is not None
    return mailbox.folder


class MailboxConnections:
    """IMAP sources kept logged in between polls, one per project, safe to share across threads.

    A source is replaced when the project's mailbox settings change, and dropped after a poll
    that left it disconnected, so the next poll builds it again and reads the password anew.
    """

    def __init__(self) -> None:
        self._sources: dict[str, tuple[str, ImapSource]] = {}
        self._lock = threading.Lock()

    def source(self, project: ProjectView, open_source: Callable[[], ImapSource]) -> ImapSource:
        """Return the project's kept source, or one from ``open_source`` that is kept from now."""
        key = _mailbox_key(project)
        with self._lock:
            entry = self._sources.get(project.code)
            if entry is not None and entry[0] == key:
                return entry[1]
            source = open_source()
            self._sources[project.code] = (key, source)
        if entry is not None:
            entry[1].close()
        return source

    def discard(self, code: str) -> None:
        """Close and forget the source of project ``code``, if one is kept."""
        with self._lock:
            entry = self._sources.pop(code, None)
        if entry is not None:
            entry[1].close()

    def retain(self, codes: Iterable[str]) -> None:
        """Close the sources of every project not in ``codes``."""
        wanted = set(codes)
        with self._lock:
            gone = [code for code in self._sources if code not in wanted]
        for code in gone:
            self.discard(code)

    def close_all(self) -> None:
        """Log out of every kept connection."""
        with self._lock:
            codes = list(self._sources)
        for code in codes:
            self.discard(code)
        if codes:
            log.info("mailbox connections closed", extra={"connections": len(codes)})


def _mailbox_key(project: ProjectView) -> str:
    mailbox = project.settings.mailbox
    assert mailbox is not None
    return f"{mailbox.model_dump_json()}|{project.imap_timeout}"


@dataclass(frozen=True)
class MailboxPoller:
    """Polls project mailboxes into one database and archive, recording each poll's health.

    With ``connections``, a poll reuses the project's logged-in connection and leaves it open;
    without, each poll connects and logs out.
    """

    settings: Settings
    database: Database
    archive: Archive
    connections: MailboxConnections | None = None

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
        progress: Callable[[int], None] | None = None,
    ) -> PollResult:
        """Poll the project's mailbox, on its kept connection when one is open; record the outcome.

        ``on_source`` receives the source before it is used, so a supervisor can abort it.
        ``error_text`` words a failure for the health record, for example to say that the
        daemon cut the poll short at its time limit. Without ``connections`` the poll logs out.
        """
        try:
            source = self._source(project)
        except AcuseError as exc:
            self.record_failure(project, mailbox_folder(project), error_text(exc))
            raise
        if on_source is not None:
            on_source(source)
        try:
            return self.poll_connected(
                project,
                source,
                should_continue=should_continue,
                error_text=error_text,
                progress=progress,
            )
        finally:
            self._release(project, source)

    def _source(self, project: ProjectView) -> ImapSource:
        if self.connections is None:
            return self.open_source(project)
        return self.connections.source(project, lambda: self.open_source(project))

    def _release(self, project: ProjectView, source: ImapSource) -> None:
        if self.connections is None:
            source.close()
        elif not source.connected:
            self.connections.discard(project.code)

    def poll_connected(
        self,
        project: ProjectView,
        source: ImapSource,
        *,
        should_continue: Callable[[], bool] | None = None,
        error_text: ErrorText = str,
        progress: Callable[[int], None] | None = None,
    ) -> PollResult:
        """Poll the source, connecting it when needed, and record the outcome."""
        folder = source.mailbox.folder
        try:
            result = poll_mailbox(
                self.database, self.archive, project, source, should_continue, progress=progress
            )
        except AcuseError as exc:
            self.record_failure(project, folder, error_text(exc))
            raise
        record_poll_success(self.database, project.code, folder, result.counts.stored, utcnow())
        return result

    def record_failure(self, project: ProjectView, folder: str, error: str) -> None:
        """Record a failed poll of the project's folder."""
        record_poll_failure(self.database, project.code, folder, error, utcnow())
