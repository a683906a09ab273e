"""The ``[instances]`` section: who this daemon is among several sharing one database.

Several ``acuse run`` processes may share one PostgreSQL database. Each one has an identity and
holds leases on mailboxes, which it renews four times per ``lease``. A lease lasts three
quarters of ``lease`` past its last renewal, and the others look for lapsed leases at every
renewal, so the mailboxes of a process that died move to the others within one ``lease``.
"""

import os
import re
import socket
from datetime import timedelta

from pydantic import field_validator

from config.types import Duration, Section

MAX_ID_LENGTH = 64
MIN_LEASE = timedelta(seconds=4)
MAX_LEASE = timedelta(days=1)
RENEWALS_PER_LEASE = 4
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


def default_instance_id() -> str:
    """Return ``host:pid``, unique among the processes that share one database."""
    host = socket.gethostname() or "localhost"
    suffix = f":{os.getpid()}"
    return host[: MAX_ID_LENGTH - len(suffix)] + suffix


class InstanceSettings(Section):
    """This process's identity and how long its mailbox leases last without renewal."""

    id: str | None = None
    lease: Duration = timedelta(minutes=1)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > MAX_ID_LENGTH or not _ID_PATTERN.match(value):
            message = (
                f"invalid instance id {value!r}: use up to {MAX_ID_LENGTH} letters, digits, "
                "'.', '_', ':', '@' or '-', starting with a letter or digit"
            )
            raise ValueError(message)
        return value

    @field_validator("lease")
    @classmethod
    def _sane_lease(cls, value: timedelta) -> timedelta:
        if not MIN_LEASE <= value <= MAX_LEASE:
            message = (
                f"lease {value.total_seconds():g}s is out of range: "
                "use a duration from 4s to 1d, such as 1m"
            )
            raise ValueError(message)
        return value

    @property
    def renew_every(self) -> timedelta:
        """How often an instance renews its leases and looks for mailboxes without an owner."""
        return self.lease / RENEWALS_PER_LEASE

    @property
    def hold_for(self) -> timedelta:
        """How long a renewed lease lasts: it ends one renewal interval before ``lease``.

        An instance that dies lets its leases lapse within this time, and the others look for
        lapsed leases every ``renew_every``, so its mailboxes move within ``lease``.
        """
        return self.lease - self.renew_every

    def resolved_id(self) -> str:
        """Return the configured id, or ``host:pid`` when none is set."""
        return self.id or default_instance_id()
