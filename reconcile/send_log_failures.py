"""Watched send-log files that failed to import, so that one bad export blocks no other.

A failure is stored per project and path with the SHA-256 of the content that failed. The
daemon skips that content on later turns and tries again once the file changes. A file that
imports, or that is gone from the watched folder, loses its failure.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import Session, col, select

from config.database import Database
from reconcile.models import SendImport, SendLogFailure


@dataclass(frozen=True)
class SendLogHealth:
    """A project's last send-log import and its files that failed, newest failure first."""

    last_import_at: datetime | None
    last_import_path: str | None
    failures: list[SendLogFailure]


def record_failure(db: Database, failure: SendLogFailure) -> None:
    """Store a failure, replacing the earlier failure of the same project and path."""
    with db.write() as session:
        session.merge(failure)


def clear_failure(db: Database, project: str, path: Path) -> None:
    """Forget the failure of ``path``, once its content imported."""
    statement = delete(SendLogFailure).where(
        col(SendLogFailure.project) == project, col(SendLogFailure.path) == str(path)
    )
    with db.write() as session:
        session.exec(statement)


def clear_failures_of_missing_files(db: Database, project: str, present: list[Path]) -> None:
    """Forget the failures of files that are no longer among the ``present`` ones."""
    statement = delete(SendLogFailure).where(
        col(SendLogFailure.project) == project,
        col(SendLogFailure.path).not_in([str(path) for path in present]),
    )
    with db.write() as session:
        session.exec(statement)


def failed_before(db: Database, project: str, path: Path, sha256: str) -> SendLogFailure | None:
    """Return the stored failure of ``path`` when it failed with this same content."""
    with db.session() as session:
        failure = session.get(SendLogFailure, (project, str(path)))
    if failure is None or failure.sha256 != sha256:
        return None
    return failure


def send_log_health(session: Session, project: str) -> SendLogHealth:
    """Collect the send-log figures ``acuse status`` shows for one project."""
    latest = session.exec(
        select(SendImport.imported_at, SendImport.path)
        .where(col(SendImport.project) == project)
        .order_by(col(SendImport.imported_at).desc(), col(SendImport.id).desc())
        .limit(1)
    ).first()
    failures = session.exec(
        select(SendLogFailure)
        .where(col(SendLogFailure.project) == project)
        .order_by(col(SendLogFailure.failed_at).desc(), col(SendLogFailure.path))
    ).all()
    return SendLogHealth(
        last_import_at=latest[0] if latest else None,
        last_import_path=latest[1] if latest else None,
        failures=list(failures),
    )
