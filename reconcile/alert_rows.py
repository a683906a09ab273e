"""The rows of an alert email: columns per kind, and each alert's details in the reader's terms.

Details hold stable codes and UTC times; here they become the locale's words, and times in
the project's zone with their offset, formatted by Babel.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from gettext import NullTranslations
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal

from config.alert_settings import AlertKind
from config.i18n import N_
from monitor.models import EvidenceKind
from reconcile.alert_findings import SEND_KINDS
from reconcile.alert_models import Resolution
from reconcile.alert_routing import AlertScope
from reconcile.labels import (
    NO_REASON,
    REASON_TEMPLATES,
    evidence_kind_labels,
    quarantine_reason_text,
    state_labels,
    trust_reason_text,
)
from reconcile.models import SendState
from reconcile.states import failure_detail

_DATETIME_PATTERNS = {"es_CO": "dd/MM/yyyy HH:mm xxx", "en": "yyyy-MM-dd HH:mm xxx"}
_DATE_PATTERNS = {"es_CO": "d 'de' MMMM 'de' yyyy", "en": "MMMM d, yyyy"}


@dataclass(frozen=True)
class Column:
    """One column of the table: the key in the row and the heading people read."""

    key: str
    heading: str


_RESOLUTIONS = {
    Resolution.CERTIFIED: N_("certified late"),
    Resolution.SUPERSEDED: N_("a later send to the same recipient was certified"),
    Resolution.STATE_CHANGED: N_("the send changed state"),
    Resolution.NEEDS_REVIEW: N_("several pieces of evidence now fit the send: review it"),
    Resolution.EVIDENCE_CLAIMED: N_("a send now matches this evidence"),
    Resolution.MAILBOX_RECOVERED: N_("the mailbox answers again"),
    Resolution.EVIDENCE_ARRIVED: N_("evidence arrives again"),
    Resolution.MESSAGE_RELEASED: N_("the message was read after all"),
    Resolution.DELIVERY_RECOVERED: N_("the SMTP server accepts alert emails again"),
    Resolution.SEND_LOG_IMPORTED: N_("the file was imported or removed"),
    Resolution.DISABLED: N_("the alert kind was switched off"),
}


class RowFormatter:
    """Formats details for one scope in one locale."""

    def __init__(self, scope: AlertScope, translations: NullTranslations) -> None:
        self.scope = scope
        self.gettext: Callable[[str], str] = translations.gettext
        self.pgettext: Callable[[str, str], str] = translations.pgettext

    def time(self, value: str | datetime | None) -> str:
        """Format a time in the scope's zone with its offset, as the locale writes it."""
        if value is None:
            return ""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        local = moment.astimezone(self.scope.timezone)
        return format_datetime(
            local, _DATETIME_PATTERNS[self.scope.locale], locale=self.scope.locale
        )

    def date(self, value: datetime) -> str:
        """Format a day in the scope's zone, written out as the locale does."""
        local = value.astimezone(self.scope.timezone)
        return format_datetime(local, _DATE_PATTERNS[self.scope.locale], locale=self.scope.locale)

    def count(self, value: int) -> str:
        """Format a whole number with the locale's grouping separator."""
        return format_decimal(value, locale=self.scope.locale)

    def columns(self, kind: AlertKind) -> list[Column]:
        """The columns of the table for alerts of ``kind``."""
        _ = self.gettext
        if kind in SEND_KINDS.values():
            return [
                Column("negocio", _("Negocio")),
                Column("inmueble", _("Unit")),
                Column("client", _("Client")),
                Column("recipient", _("Recipient")),
                Column("subject", _("Subject")),
                Column("sent_at", _("Sent")),
                Column("state", _("State")),
                Column("reason", _("Reason")),
            ]
        specific = {
            AlertKind.ORPHAN_EVIDENCE: [
                Column("certificate_id", _("Certificate")),
                Column("kind", _("Kind")),
                Column("recipient", _("Recipient")),
                Column("subject", _("Subject")),
                Column("time", _("Sent")),
            ],
            AlertKind.MAILBOX_UNREACHABLE: [
                Column("mailbox", _("Mailbox")),
                Column("failing_since", _("Failing since")),
                Column("consecutive_failures", _("Failed polls")),
                Column("last_error", _("Last error")),
            ],
            AlertKind.EVIDENCE_SILENCE: [
                Column("last_evidence_at", _("Last evidence")),
                Column("sends_waiting", _("Sends without evidence")),
                Column("oldest_send_at", _("Oldest of them")),
            ],
            AlertKind.QUARANTINED_MESSAGES: [
                Column("from_address", _("From")),
                Column("subject", _("Subject")),
                Column("stored_at", _("Received")),
                Column("reason", _("Reason")),
            ],
            AlertKind.SEND_LOG_FAILED: [
                Column("path", _("File")),
                Column("failed_at", _("Failed at")),
                Column("reason", _("Reason")),
            ],
            AlertKind.ALERT_DELIVERY_FAILING: [
                Column("failing_since", _("Failing since")),
                Column("waiting", _("Emails waiting")),
                Column("last_error", _("Last error")),
            ],
        }
        return specific[kind]

    def row(self, kind: AlertKind, details: dict[str, Any]) -> dict[str, str]:
        """The cells of one alert, keyed like ``columns(kind)``, plus its resolution."""
        if kind in SEND_KINDS.values():
            cells = self._send_cells(details)
        else:
            cells = self._other_cells(details)
        resolution = details.get("resolution")
        cells["resolution"] = (
            self.gettext(_RESOLUTIONS[Resolution(resolution)]) if resolution else ""
        )
        return cells

    def _send_cells(self, details: dict[str, Any]) -> dict[str, str]:
        state = SendState(details["state"])
        return {
            "negocio": details.get("negocio") or "",
            "inmueble": details.get("inmueble") or "",
            "client": details.get("client") or "",
            "recipient": details.get("recipient") or "",
            "subject": details.get("subject") or "",
            "sent_at": self.time(details.get("sent_at")),
            "state": state_labels(self.pgettext)[state],
            "reason": self.send_reason(state, details),
        }

    def send_reason(self, state: SendState, details: dict[str, Any]) -> str:
        """Explain a send's state in one line."""
        detail = failure_detail(
            details.get("smtp_code"), details.get("smtp_detail"), details.get("evidence_reason")
        )
        trust_reasons = details.get("trust_reasons")
        if state is SendState.UNVERIFIED and trust_reasons:
            lines = str(trust_reasons).splitlines()
            detail = "; ".join(
                trust_reason_text(line, self.gettext, self.pgettext) for line in lines
            )
        return self.gettext(REASON_TEMPLATES[state]).format(
            certificate=details.get("certificate_id") or "?",
            delivered=self.time(details.get("delivered_at")),
            detail=detail or self.gettext(NO_REASON),
            candidates="",
            deadline=self.time(details.get("deadline")),
        )

    def _other_cells(self, details: dict[str, Any]) -> dict[str, str]:
        cells = {key: "" if value is None else str(value) for key, value in details.items()}
        times = ("time", "failing_since", "last_evidence_at", "oldest_send_at", "stored_at")
        for key in (*times, "failed_at"):
            if key in details:
                cells[key] = self.time(details[key])
        for key in ("consecutive_failures", "sends_waiting", "waiting"):
            if isinstance(details.get(key), int):
                cells[key] = self.count(details[key])
        if "message_pk" in details and details.get("reason"):
            cells["reason"] = quarantine_reason_text(str(details["reason"]), self.gettext)
        if "kind" in details:
            kind = EvidenceKind(details["kind"])
            cells["kind"] = evidence_kind_labels(self.pgettext)[kind]
        if "folder" in details:
            cells["mailbox"] = (
                f"{details.get('username', '')}@{details.get('host', '')}/{details['folder']}"
            )
        return cells
