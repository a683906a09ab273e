"""The daemon's send-log import: new or changed export files, or the result of a SQL query.

A file is imported when no earlier import of the project with the same SHA-256 ran to its
end, so an unchanged export is skipped however often the glob sees it. Among several daemon
instances, the one that claims ``send-log:<project>:<sha256>`` imports the file and the others
skip it, also when they all see the new file at once; an instance that dies mid-import loses
its claim when it lapses, and the next one imports the whole file again, adding only the rows
that are missing. A file that fails to import is stored as a send-log failure and skipped, so
the files after it still import. It is tried again once its content changes, and its failure
is forgotten once it imports or leaves the glob. A file changed in the last
SETTLE_TIME is left for the next turn, because it may still be being written, and a half
written CSV would store a truncated last row. A query result is imported when its digest
differs from the last import of that query.
"""

import glob
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from acuse.instances import InstanceKeeper
from config.database import Database, utcnow
from config.errors import DatabaseError
from config.settings import ProjectView, Settings
from reconcile.models import SendImport, SendLogFailure
from reconcile.send_import import ImportSummary, file_sha256, import_send_rows, sha256_imported
from reconcile.send_log import SendLogError, read_send_log
from reconcile.send_log_failures import (
    clear_failure,
    clear_failures_of_missing_files,
    failed_before,
    record_failure,
)
from reconcile.send_log_query import query_digest, read_send_log_query, send_log_query

log = logging.getLogger(__name__)

SETTLE_TIME = timedelta(seconds=10)


@dataclass(frozen=True)
class SendLogImporter:
    """Imports what is new in the send logs of projects into one database."""

    settings: Settings
    database: Database
    instance: InstanceKeeper | None = None

    def import_new(
        self, project: ProjectView, should_continue: Callable[[], bool] = lambda: True
    ) -> list[ImportSummary]:
        """Import the project's new send-log files, or its query result when it changed."""
        config = project.settings.send_log
        if config.path is not None:
            return self._import_files(project, config.path, should_continue)
        if config.url is not None:
            summary = self._import_query(project)
            return [] if summary is None else [summary]
        return []

    def matching_files(self, pattern: str) -> list[Path]:
        """The files the glob ``pattern`` names, oldest first; relative to the config folder."""
        resolved = str(self.settings.resolve_path(pattern))
        paths = [Path(name) for name in glob.glob(resolved, recursive=True)]
        files = [path for path in paths if path.is_file()]
        return sorted(files, key=lambda path: (path.stat().st_mtime, path.name))

    def _import_files(
        self, project: ProjectView, pattern: str, should_continue: Callable[[], bool]
    ) -> list[ImportSummary]:
        summaries: list[ImportSummary] = []
        files = self.matching_files(pattern)
        clear_failures_of_missing_files(
            self.database, project.code, [path.resolve() for path in files]
        )
        for path in files:
            if not should_continue():
                break
            if _recently_changed(path):
                log.info(
                    "send-log file changed moments ago; importing it on a later turn",
                    extra={"project": project.code, "path": str(path)},
                )
                continue
            digest = file_sha256(path)
            with self._claimed(f"send-log:{project.code}:{digest}") as claimed:
                if not claimed:
                    log.info(
                        "send-log file is being imported by another instance",
                        extra={"project": project.code, "path": str(path), "sha256": digest},
                    )
                    continue
                summary = self._import_file(project, path, digest)
            if summary is not None:
                summaries.append(summary)
        return summaries

    def _import_file(self, project: ProjectView, path: Path, digest: str) -> ImportSummary | None:
        if failed_before(self.database, project.code, path.resolve(), digest):
            log.debug(
                "send-log file failed before and has not changed",
                extra={"project": project.code, "path": str(path), "sha256": digest},
            )
            return None
        if sha256_imported(self.database, project.code, digest):
            log.debug(
                "send-log file already imported",
                extra={"project": project.code, "path": str(path), "sha256": digest},
            )
            return None
        return self._import_file_or_record(project, path, digest)

    def _import_file_or_record(
        self, project: ProjectView, path: Path, digest: str
    ) -> ImportSummary | None:
        """Import one file; on a failure that is the file's own, store it and return None.

        Database errors propagate, because they are no fault of the file and the whole job
        is retried later.
        """
        resolved = path.resolve()
        now = utcnow()
        try:
            items = read_send_log(path, project, now)
            summary = import_send_rows(
                self.database,
                items,
                project,
                now,
                source=resolved,
                sha256=digest,
                after_batch=self._renewal(f"send-log:{project.code}:{digest}"),
            )
        except (DatabaseError, SQLAlchemyError):
            raise
        except SendLogError as exc:
            reason = str(exc)
            log.error(
                "send-log file failed to import; skipping it until it changes",
                extra={"project": project.code, "path": str(path), "reason": reason},
            )
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.exception(
                "send-log file failed to import; skipping it until it changes",
                extra={"project": project.code, "path": str(path), "reason": reason},
            )
        else:
            clear_failure(self.database, project.code, resolved)
            return summary

        failure = SendLogFailure(
            project=project.code, path=str(resolved), sha256=digest, failed_at=now, reason=reason
        )
        record_failure(self.database, failure)
        return None

    @contextmanager
    def _claimed(self, name: str) -> Iterator[bool]:
        """Claim the work ``name`` for the block; true without an instance, which works alone."""
        if self.instance is None:
            yield True
            return
        if not self.instance.claim(name):
            yield False
            return
        try:
            yield True
        finally:
            self.instance.release(name)

    def _renewal(self, name: str) -> Callable[[], None] | None:
        instance = self.instance
        if instance is None:
            return None
        return lambda: instance.renew_claim(name)

    def _import_query(self, project: ProjectView) -> ImportSummary | None:
        with self._claimed(f"send-log-query:{project.code}") as claimed:
            if not claimed:
                log.info(
                    "send-log query is being imported by another instance",
                    extra={"project": project.code},
                )
                return None
            return self._import_query_result(project)

    def _import_query_result(self, project: ProjectView) -> ImportSummary | None:
        query = send_log_query(self.settings, project)
        digest = query_digest(query)
        if digest == self._last_digest(project.code, query.source):
            log.debug(
                "send-log query result unchanged",
                extra={"project": project.code, "source": query.source},
            )
            return None
        items = read_send_log_query(query, project)
        return import_send_rows(
            self.database,
            items,
            project,
            utcnow(),
            source=query.source,
            sha256=digest,
            after_batch=self._renewal(f"send-log-query:{project.code}"),
        )

    def _last_digest(self, project: str, source: str) -> str | None:
        statement = (
            select(SendImport.sha256)
            .where(
                SendImport.project == project,
                SendImport.path == source,
                col(SendImport.finished_at).is_not(None),
            )
            .order_by(col(SendImport.id).desc())
            .limit(1)
        )
        with self.database.session() as session:
            return session.exec(statement).first()


def _recently_changed(path: Path) -> bool:
    return time.time() - path.stat().st_mtime < SETTLE_TIME.total_seconds()
