"""What a person reads about a send: state names, reasons, dates and numbers in their locale.

Scripts get the stable English codes instead (``certified``, ``missing``); see ``acuse.output``.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from config.i18n import _, active_locale_translation
from reconcile.models import SendState
from reconcile.queries import SendView
from reconcile.states import failure_detail

_DATETIME_PATTERNS = {"es_CO": "dd/MM/yyyy HH:mm xxx", "en": "yyyy-MM-dd HH:mm xxx"}

Translate = Callable[[str], str]


def state_label(state: SendState) -> str:
    """The state's name in the active locale."""
    labels = {
        SendState.PENDING: _("pending"),
        SendState.CERTIFIED: _("certified"),
        SendState.DELIVERY_FAILED: _("delivery failed"),
        SendState.REJECTED: _("rejected"),
        SendState.MISSING: _("not certified"),
        SendState.NOT_COPIED: _("Lleida.net not in copy"),
        SendState.UNVERIFIED: _("unverified"),
        SendState.AMBIGUOUS: _("ambiguous"),
    }
    return labels[state]


def current_locale() -> str:
    """The locale whose catalog is active: ``es_CO`` or ``en``."""
    return "en" if active_locale_translation().gettext("pending") == "pending" else "es_CO"


def format_time(value: datetime | None, zone: ZoneInfo, locale: str | None = None) -> str:
    """Format an aware datetime in ``zone`` with its offset, as the locale writes dates."""
    if value is None:
        return ""
    locale = locale or current_locale()
    return format_datetime(value.astimezone(zone), _DATETIME_PATTERNS[locale], locale=locale)


def format_count(value: int, locale: str | None = None) -> str:
    """Format a whole number with the locale's grouping separator."""
    return format_decimal(value, locale=locale or current_locale())


def format_hours(value: timedelta) -> str:
    """Format a deadline such as 6 hours as ``6 h`` (or ``90 min`` below two hours)."""
    minutes = int(value.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{format_count(minutes // 60)} h"


def send_reason(view: SendView, zone: ZoneInfo, translate: Translate = _) -> str:
    """Explain a send's state in one line.

    ``translate`` is ``_`` for people and ``str`` for scripts, which read English.
    """
    locale = current_locale() if translate is _ else "en"
    if view.state is SendState.CERTIFIED:
        return translate("Certificate {certificate}, delivered {time}").format(
            certificate=view.certificate_id or "?", time=format_time(view.delivered_at, zone, locale)
        )
    if view.state in (SendState.DELIVERY_FAILED, SendState.REJECTED):
        detail = failure_detail(view.smtp_code, view.smtp_detail, view.evidence_reason)
        return detail or translate("The provider gave no reason")
    if view.state is SendState.AMBIGUOUS:
        return translate("Several pieces of evidence fit: {candidates}").format(
            candidates=", ".join(f"#{number}" for number in (view.candidates or "").split(","))
        )
    if view.state is SendState.NOT_COPIED:
        return translate("The send log says Lleida.net was not in copy")
    if view.state is SendState.MISSING:
        return translate("No evidence by the deadline {time}").format(time=format_time(view.deadline, zone, locale))
    if view.state is SendState.PENDING:
        return translate("Waiting for evidence until {time}").format(time=format_time(view.deadline, zone, locale))
    return ""
