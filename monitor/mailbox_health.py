"""The record of how each mailbox's polls went, for ``acuse status`` and the operators' alerts."""

import logging
from datetime import datetime

from sqlmodel import Session, select

from config.database import Database
from monitor.models import MailboxHealth

log = logging.getLogger(__name__)


def _load(session, project: str, folder: str) -> MailboxHealth:  # type: ignore[no-untyped-def]
    health = session.get(MailboxHealth, (project, folder))
    return health if health is not None else MailboxHealth(project=project, folder=folder)


def record_poll_success(
    database: Database, project: str, folder: str, stored: int, now: datetime
) -> None:
    """Record a poll that finished; it ends any streak of failures."""
    with database.write(lock=f"mailbox-health:{project}:{folder}") as session:
        health = _load(session, project, folder)
        health.last_attempt_at = now
        health.last_success_at = now
        health.consecutive_failures = 0
        health.failing_since = None
        health.messages_stored += stored
        session.add(health)


def record_poll_failure(
    database: Database, project: str, folder: str, error: str, now: datetime
) -> MailboxHealth:
    """Record a failed poll with its error message and return the updated record."""
    with database.write(lock=f"mailbox-health:{project}:{folder}") as session:
        health = _load(session, project, folder)
        health.last_attempt_at = now
        health.last_error = error
        health.last_error_at = now
        health.consecutive_failures += 1
        if health.failing_since is None:
            health.failing_since = now
        session.add(health)
        return health


def load_health(session: Session, project: str) -> list[MailboxHealth]:
    """The poll records of every folder of ``project`` that was ever polled."""
    query = select(MailboxHealth).where(MailboxHealth.project == project)
    return list(session.exec(query).all())
