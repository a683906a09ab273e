"""This daemon among the others sharing its database: its identity, leases and work claims.

The daemon registers at start, renews every ``[instances] renew_every`` from a job of its own,
and retires at a clean stop so the others take its mailboxes at their next renewal. A poll runs
only while the instance holds the mailbox's lease. A lease whose end time has passed counts as
lost, even before the next renewal finds out whether another instance took it.
"""

import logging
import socket
import threading
from datetime import datetime

from config.database import Database, utcnow
from config.settings import Settings, project_views
from monitor.leases import (
    Mailbox,
    claim_mailboxes,
    claim_work,
    register_instance,
    release_work,
    renew_work,
    retire_instance,
)

log = logging.getLogger(__name__)


def configured_mailboxes(settings: Settings) -> list[Mailbox]:
    """Return the (project, folder) of every project with a mailbox."""
    return [
        (project.code, project.settings.mailbox.folder)
        for project in project_views(settings)
        if project.settings.mailbox is not None
    ]


class InstanceKeeper:
    """One daemon's registration, the mailbox leases it holds, and its claims on work."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.instance_id = settings.instances.resolved_id()
        self.host = socket.gethostname() or "localhost"
        self._settings = settings
        self._held: dict[Mailbox, datetime] = {}
        self._lock = threading.Lock()

    def register(self, now: datetime) -> None:
        """Record this instance; raise InstanceIdInUse when its id belongs to a live process."""
        hold_for = self._settings.instances.hold_for
        register_instance(self.database, self.instance_id, self.host, hold_for, now)

    def renew(self, settings: Settings, now: datetime) -> None:
        """Renew the leases, balance them with the other instances, and remember what is held."""
        self._settings = settings
        held = claim_mailboxes(
            self.database,
            self.instance_id,
            configured_mailboxes(settings),
            settings.instances.hold_for,
            now,
        )
        with self._lock:
            self._held = {(lease.project, lease.folder): lease.expires_at for lease in held}

    def holds(self, project: str, folder: str, now: datetime | None = None) -> bool:
        """Return whether this instance holds the mailbox's lease at ``now`` (default: now)."""
        with self._lock:
            expires_at = self._held.get((project, folder))
        return expires_at is not None and expires_at > (now or utcnow())

    def retire(self) -> None:
        """Give up every lease and claim, so the other instances take over at once."""
        with self._lock:
            self._held = {}
        retire_instance(self.database, self.instance_id)

    def claim(self, name: str) -> bool:
        """Claim the unit of work ``name``; return False when another instance does it."""
        return claim_work(
            self.database, name, self.instance_id, self._settings.instances.hold_for, utcnow()
        )

    def renew_claim(self, name: str) -> None:
        """Extend the claim on ``name``; log when another instance took it over meanwhile."""
        hold_for = self._settings.instances.hold_for
        if not renew_work(self.database, name, self.instance_id, hold_for, utcnow()):
            log.warning(
                "work claim lost to another instance",
                extra={"instance": self.instance_id, "work": name},
            )

    def release(self, name: str) -> None:
        """Give up the claim on ``name``."""
        release_work(self.database, name, self.instance_id)
