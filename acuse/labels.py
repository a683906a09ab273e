"""Text a person reads about a send: state names, reasons, dates and numbers in their locale.

Scripts get the stable English codes instead (``certified``, ``missing``); see ``acuse.output``.
"""

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from config.i18n import N_, _, active_locale_translation
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


_REASON_TEMPLATES = {
    SendState.CERTIFIED: N_("Certificate {certificate}, delivered {delivered}"),
    SendState.DELIVERY_FAILED: N_("Delivery failed: {detail}"),
    SendState.REJECTED: N_("Lleida.net did not certify it: {detail}"),
    SendState.AMBIGUOUS: N_("Several pieces of evidence fit: {candidates}"),
    SendState.NOT_COPIED: N_("The send log says Lleida.net was not in copy"),
    SendState.MISSING: N_("No evidence by the deadline {deadline}"),
    SendState.PENDING: N_("Waiting for evidence until {deadline}"),
    SendState.UNVERIFIED: N_("The evidence failed its authenticity checks: {detail}"),
}


def send_reason(view: SendView, zone: ZoneInfo, translate: Translate = _) -> str:
    """Explain a send's state in one line.

    ``translate`` is ``_`` for people and ``str`` for scripts, which read English.
    """
    locale = current_locale() if translate is _ else "en"
    detail = failure_detail(view.smtp_code, view.smtp_detail, view.evidence_reason)
    if view.state is SendState.UNVERIFIED and view.trust_reasons:
        detail = "; ".join(view.trust_reasons.splitlines())
    candidates = (view.candidates or "").split(",")
    return translate(_REASON_TEMPLATES[view.state]).format(
        certificate=view.certificate_id or "?",
        delivered=format_time(view.delivered_at, zone, locale),
        detail=detail or translate(N_("no reason given")),
        candidates=", ".join(f"#{number}" for number in candidates),
        deadline=format_time(view.deadline, zone, locale),
    )
