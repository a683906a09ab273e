"""The one-line summary the daemon sends to systemd as ``STATUS=`` after each pass."""

import threading
from dataclasses import dataclass
from datetime import datetime

from acuse.labels import format_time_of_day
from acuse.scheduling import JobOutcome
from config.i18n import _, ngettext


@dataclass(frozen=True)
class _MailboxState:
    ok: bool
    failures: int


class StatusBoard:
    """Remembers how each mailbox's last pass went and what the last job did."""

    def __init__(self) -> None:
        self._mailboxes: dict[tuple[str, str], _MailboxState] = {}
        self._last: JobOutcome | None = None
        self._lock = threading.Lock()

    def record(self, outcome: JobOutcome) -> None:
        """Note the outcome of a run; skipped turns change nothing."""
        if outcome.skipped:
            return
        spec = outcome.spec
        with self._lock:
            self._last = outcome
            if spec.project is None or spec.mailbox is None:
                return
            key = (spec.project, spec.mailbox)
            previous = self._mailboxes.get(key, _MailboxState(True, 0))
            failures = 0 if outcome.ok else previous.failures + 1
            self._mailboxes[key] = _MailboxState(outcome.ok, failures)

    def retain(self, mailboxes: set[tuple[str, str]]) -> None:
        """Forget mailboxes that are no longer configured."""
        with self._lock:
            for key in set(self._mailboxes) - mailboxes:
                del self._mailboxes[key]

    def summary(self, now: datetime | None = None) -> str:
        """One line: how many mailboxes are healthy, which fail, and the last job."""
        with self._lock:
            states = dict(self._mailboxes)
            last = self._last
        failing = sorted(
            f"{project}/{folder}" for (project, folder), s in states.items() if not s.ok
        )
        total = len(states)
        healthy = ngettext(
            "{ok} of {total} mailbox polled without error",
            "{ok} of {total} mailboxes polled without error",
            total,
        ).format(ok=len(states) - len(failing), total=total)
        parts = [healthy]
        if failing:
            parts.append(_("failing: {mailboxes}").format(mailboxes=", ".join(failing)))
        if last is not None:
            when = format_time_of_day(last.finished_at)
            if last.ok:
                parts.append(
                    _("last job {job} succeeded at {time}").format(job=last.spec.id, time=when)
                )
            else:
                parts.append(
                    _("last job {job} failed at {time}").format(job=last.spec.id, time=when)
                )
        return "; ".join(parts)
