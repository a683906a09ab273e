"""Sharing the work of one database among several daemon instances.

Each running instance has a row in ``instance`` that it renews while it lives. Each project
mailbox has a row in ``mailbox_lease`` naming the instance that may poll it and until when. An
instance renews its own leases, gives up leases beyond its fair share (the mailboxes divided by
the live instances, rounded up) and claims free or expired ones up to that share with
``SELECT ... FOR UPDATE SKIP LOCKED``, so two instances claiming at once never take the same
row. On SQLite the row lock clause is dropped, and the database's single write lock serialises
the claims instead.

NOTE: lease times come from each instance's own clock. An instance whose clock runs ahead of
the others' takes their leases early by the difference, so the servers need synchronised clocks.

``work_claim`` rows do the same for one-off units of work, such as importing one send-log file.
The instance named in the row does the work, and loses the row when its claim expires.
"""

import logging
import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Insert, String, delete, func, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, select

from config.database import Database, UTCDateTime
from config.errors import AcuseError
from config.i18n import _

log = logging.getLogger(__name__)

# How long the row of an instance that stopped renewing stays in the ``instance`` table.
FORGET_INSTANCES_AFTER = timedelta(days=1)

Mailbox = tuple[str, str]
"""A project code and a folder name."""


class InstanceIdInUse(AcuseError):
    """Another live process on another host, or a live one here, uses the same instance id."""


class Instance(SQLModel, table=True):
    """One daemon process that shares the database, alive until ``expires_at``."""

    __tablename__ = "instance"

    id: str = Field(sa_type=String(64), primary_key=True)
    host: str = Field(sa_type=String(255))
    pid: int
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    renewed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MailboxLease(SQLModel, table=True):
    """The lease on a project's folder: the instance that may poll it, and until when.

    A row without a holder, or past ``expires_at``, is free to claim.
    """

    __tablename__ = "mailbox_lease"

    project: str = Field(sa_type=String(64), primary_key=True)
    folder: str = Field(sa_type=String(255), primary_key=True)
    holder: str | None = Field(default=None, sa_type=String(64))
    acquired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    renewed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class WorkClaim(SQLModel, table=True):
    """A unit of work, such as ``send-log:TDP2:<sha256>``, that one instance is doing."""

    __tablename__ = "work_claim"

    name: str = Field(sa_type=String(255), primary_key=True)
    holder: str | None = Field(default=None, sa_type=String(64))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


@dataclass(frozen=True)
class HeldMailbox:
    """A mailbox lease that an instance holds."""

    project: str
    folder: str
    expires_at: datetime


def _insert_ignoring_conflicts(dialect: str, model: type[SQLModel], keys: list[str]) -> Insert:
    table = SQLModel.metadata.tables[str(model.__tablename__)]
    statement: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    conflict_free: Insert = statement.on_conflict_do_nothing(index_elements=keys)
    return conflict_free


def _free_or_expired(expires_at: Any, holder: Any, now: datetime) -> Any:
    return or_(holder.is_(None), expires_at.is_(None), expires_at <= now)


def register_instance(
    database: Database, instance_id: str, host: str, lease: timedelta, now: datetime
) -> None:
    """Record this process as a live instance.

    Raises InstanceIdInUse when a live instance on another host, or a running process on this
    host, already uses ``instance_id``.
    """
    pid = os.getpid()
    with database.write(lock="instances") as session:
        current = session.get(Instance, instance_id, with_for_update=True)
        if current is not None and current.expires_at > now:
            _check_same_instance(current, host, pid)
        if current is None:
            current = Instance(
                id=instance_id, host=host, pid=pid, started_at=now, renewed_at=now, expires_at=now
            )
        current.host, current.pid, current.started_at = host, pid, now
        current.renewed_at, current.expires_at = now, now + lease
        session.add(current)
    log.info("instance registered", extra={"instance": instance_id, "host": host, "pid": pid})


def _check_same_instance(current: Instance, host: str, pid: int) -> None:
    if current.host == host and (current.pid == pid or not _process_alive(current.pid)):
        return
    message = _(
        "Instance id {id!r} is in use by process {pid} on {host} until {until}: give each "
        "instance its own [instances] id, or leave it unset to use host:pid."
    ).format(
        id=current.id, pid=current.pid, host=current.host, until=current.expires_at.isoformat()
    )
    raise InstanceIdInUse(message)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_mailboxes(
    database: Database,
    instance_id: str,
    mailboxes: Iterable[Mailbox],
    lease: timedelta,
    now: datetime,
) -> list[HeldMailbox]:
    """Renew this instance's leases, balance them to its fair share and return what it holds.

    ``mailboxes`` are the configured ones; leases on other mailboxes are given up. Each lease
    held lasts until ``now + lease``.
    """
    wanted = sorted(set(mailboxes))
    with database.write() as session:
        _renew_instance(session, instance_id, now, lease)
        _add_lease_rows(session, database.dialect, wanted)
        share = math.ceil(len(wanted) / max(_live_count(session, now), 1))
        mine = _renew_mine(session, instance_id, wanted, now, lease)
        if len(mine) > share:
            _release(session, instance_id, mine[share:])
            mine = mine[:share]
        elif len(mine) < share:
            mine += _claim_free(session, instance_id, wanted, now, lease, room=share - len(mine))
    held = [HeldMailbox(project, folder, now + lease) for project, folder in sorted(mine)]
    log.debug(
        "mailbox leases renewed",
        extra={"instance": instance_id, "held": len(held), "share": share},
    )
    return held


def _renew_instance(session: Session, instance_id: str, now: datetime, lease: timedelta) -> None:
    renewed = session.execute(
        update(Instance)
        .where(col(Instance.id) == instance_id)
        .values(renewed_at=now, expires_at=now + lease)
    )
    if not renewed.rowcount:  # type: ignore[attr-defined]
        # The row was forgotten while this process was paused for longer than a day.
        host = socket.gethostname() or "localhost"
        session.add(
            Instance(
                id=instance_id,
                host=host,
                pid=os.getpid(),
                started_at=now,
                renewed_at=now,
                expires_at=now + lease,
            )
        )
        session.flush()
    session.execute(delete(Instance).where(col(Instance.expires_at) < now - FORGET_INSTANCES_AFTER))


def _add_lease_rows(session: Session, dialect: str, wanted: list[Mailbox]) -> None:
    if not wanted:
        return
    statement = _insert_ignoring_conflicts(dialect, MailboxLease, ["project", "folder"])
    session.execute(
        statement, [{"project": project, "folder": folder} for project, folder in wanted]
    )


def _live_count(session: Session, now: datetime) -> int:
    query = select(func.count()).select_from(Instance).where(col(Instance.expires_at) > now)
    return int(session.execute(query).scalar_one())


def _lease_key() -> Any:
    return tuple_(col(MailboxLease.project), col(MailboxLease.folder))


def _renew_mine(
    session: Session, instance_id: str, wanted: list[Mailbox], now: datetime, lease: timedelta
) -> list[Mailbox]:
    mine = col(MailboxLease.holder) == instance_id
    unwanted = [mine, _lease_key().not_in(wanted)] if wanted else [mine]
    stale = session.execute(
        select(col(MailboxLease.project), col(MailboxLease.folder)).where(*unwanted)
    ).all()
    _release(session, instance_id, [(row[0], row[1]) for row in stale])
    if not wanted:
        return []
    rows = session.execute(
        select(col(MailboxLease.project), col(MailboxLease.folder))
        .where(mine, _lease_key().in_(wanted))
        .order_by(col(MailboxLease.project), col(MailboxLease.folder))
        .with_for_update()
    ).all()
    held = [(row[0], row[1]) for row in rows]
    if held:
        session.execute(
            update(MailboxLease)
            .where(mine, _lease_key().in_(held))
            .values(renewed_at=now, expires_at=now + lease)
        )
    return held


def _claim_free(
    session: Session,
    instance_id: str,
    wanted: list[Mailbox],
    now: datetime,
    lease: timedelta,
    *,
    room: int,
) -> list[Mailbox]:
    free = (
        select(col(MailboxLease.project), col(MailboxLease.folder))
        .where(
            _lease_key().in_(wanted),
            _free_or_expired(col(MailboxLease.expires_at), col(MailboxLease.holder), now),
        )
        .order_by(col(MailboxLease.project), col(MailboxLease.folder))
        .limit(room)
        .with_for_update(skip_locked=True)
    )
    claimed = [(row[0], row[1]) for row in session.execute(free).all()]
    if not claimed:
        return []
    session.execute(
        update(MailboxLease)
        .where(_lease_key().in_(claimed))
        .values(holder=instance_id, acquired_at=now, renewed_at=now, expires_at=now + lease)
    )
    for project, folder in claimed:
        log.info(
            "mailbox lease acquired",
            extra={"instance": instance_id, "project": project, "folder": folder},
        )
    return claimed


def _release(session: Session, instance_id: str, mailboxes: list[Mailbox]) -> None:
    if not mailboxes:
        return
    session.execute(
        update(MailboxLease)
        .where(col(MailboxLease.holder) == instance_id, _lease_key().in_(mailboxes))
        .values(holder=None, expires_at=None)
    )
    for project, folder in mailboxes:
        log.info(
            "mailbox lease released",
            extra={"instance": instance_id, "project": project, "folder": folder},
        )


def retire_instance(database: Database, instance_id: str) -> None:
    """Give up every lease and claim of the instance and remove its row, at a clean stop."""
    with database.write() as session:
        session.execute(
            update(MailboxLease)
            .where(col(MailboxLease.holder) == instance_id)
            .values(holder=None, expires_at=None)
        )
        session.execute(delete(WorkClaim).where(col(WorkClaim.holder) == instance_id))
        session.execute(delete(Instance).where(col(Instance.id) == instance_id))
    log.info("instance retired", extra={"instance": instance_id})


def claim_work(
    database: Database, name: str, instance_id: str, lease: timedelta, now: datetime
) -> bool:
    """Claim the unit of work ``name`` until ``now + lease``; return False when another has it."""
    with database.write() as session:
        statement = _insert_ignoring_conflicts(database.dialect, WorkClaim, ["name"])
        session.execute(statement, [{"name": name}])
        free = (
            select(col(WorkClaim.name))
            .where(
                col(WorkClaim.name) == name,
                or_(
                    col(WorkClaim.holder) == instance_id,
                    _free_or_expired(col(WorkClaim.expires_at), col(WorkClaim.holder), now),
                ),
            )
            .with_for_update(skip_locked=True)
        )
        if session.execute(free).first() is None:
            return False
        session.execute(
            update(WorkClaim)
            .where(col(WorkClaim.name) == name)
            .values(holder=instance_id, claimed_at=now, expires_at=now + lease)
        )
    return True


def renew_work(
    database: Database, name: str, instance_id: str, lease: timedelta, now: datetime
) -> bool:
    """Extend this instance's claim on ``name``; return False when the claim is no longer its."""
    with database.write() as session:
        result = session.execute(
            update(WorkClaim)
            .where(col(WorkClaim.name) == name, col(WorkClaim.holder) == instance_id)
            .values(expires_at=now + lease)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_work(database: Database, name: str, instance_id: str) -> None:
    """Give up this instance's claim on ``name``."""
    with database.write() as session:
        session.execute(
            delete(WorkClaim).where(
                col(WorkClaim.name) == name, col(WorkClaim.holder) == instance_id
            )
        )


def mailbox_leases(session: Session) -> list[MailboxLease]:
    """Return every mailbox lease row, by project and folder."""
    query = select(MailboxLease).order_by(col(MailboxLease.project), col(MailboxLease.folder))
    return list(session.exec(query).all())


def instances(session: Session) -> list[Instance]:
    """Return every instance row, live or recently gone, by id."""
    return list(session.exec(select(Instance).order_by(col(Instance.id))).all())
