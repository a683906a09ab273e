"""Text a person reads about a send: state names, reasons, dates and numbers in their locale.

Scripts get the stable English codes instead (``certified``, ``missing``); see ``acuse.output``.
"""

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.dates import format_time as format_time_only
from babel.numbers import format_decimal

from config.i18n import _, active_locale, pgettext
from monitor.archive import ProblemKind
from monitor.models import CheckResult, EvidenceKind, MessageClass, TrustVerdict
from reconcile.labels import (
    NO_REASON,
    REASON_TEMPLATES,
    evidence_kind_labels,
    state_labels,
    trust_reason_text,
)
from reconcile.models import MatchRule, SendState
from reconcile.queries import SendView
from reconcile.states import failure_detail

_DATETIME_PATTERNS = {"es_CO": "dd/MM/yyyy HH:mm xxx", "en": "yyyy-MM-dd HH:mm xxx"}

Translate = Callable[[str], str]


def state_label(state: SendState) -> str:
    """Name the state in the active locale."""
    return state_labels(pgettext)[state]


def state_meaning(state: SendState) -> str:
    """Explain in one phrase what the state means, for help texts."""
    meanings = {
        SendState.PENDING: _("no evidence yet, still inside its deadline"),
        SendState.CERTIFIED: _("a trusted certificate of delivery matched it"),
        SendState.DELIVERY_FAILED: _("the evidence reports a bounce, with the SMTP reason"),
        SendState.REJECTED: _("Lleida.net refused to certify it"),
        SendState.MISSING: _("the deadline passed without evidence"),
        SendState.NOT_COPIED: _("the send log says Lleida.net was not in copy"),
        SendState.UNVERIFIED: _("its only evidence failed the authenticity checks"),
        SendState.AMBIGUOUS: _("several pieces of evidence fit equally well; review it"),
    }
    return meanings[state]


def state_choices_help() -> str:
    """List the accepted ``--state`` values, each with its label and meaning."""
    return "; ".join(
        f"{state.value} ({state_label(state)}: {state_meaning(state)})" for state in SendState
    )


def evidence_kind_label(kind: EvidenceKind) -> str:
    """Name the kind of a piece of evidence in the active locale."""
    return evidence_kind_labels(pgettext)[kind]


def match_rule_label(rule: MatchRule | str | None) -> str:
    """Name the rule that linked a send to its evidence; return "" for an unmatched send."""
    if rule is None:
        return ""
    labels = {
        MatchRule.MESSAGE_ID: _("original Message-ID"),
        MatchRule.REFERENCE: _("reference in the subject"),
        MatchRule.RECIPIENT_SUBJECT_TIME: _("recipient, subject and time"),
        MatchRule.SUBJECT_TIME: _("subject and time of a service notice"),
    }
    return labels[MatchRule(rule)]


def trust_verdict_label(verdict: TrustVerdict) -> str:
    """Name the authenticity verdict of a piece of evidence in the active locale."""
    labels = {
        TrustVerdict.VERIFIED: pgettext("authenticity", "verified"),
        TrustVerdict.WARNING: pgettext("authenticity", "counts, with a warning"),
        TrustVerdict.UNVERIFIED: pgettext("authenticity", "unverified, does not count"),
        TrustVerdict.UNCHECKED: pgettext("authenticity", "not checked"),
    }
    return labels[verdict]


def check_result_label(result: CheckResult) -> str:
    """Name the outcome of one authenticity check in the active locale."""
    labels = {
        CheckResult.PASS: pgettext("check result", "passed"),
        CheckResult.FAIL: pgettext("check result", "failed"),
        CheckResult.NONE: pgettext("check result", "no signature"),
        CheckResult.OFF: pgettext("check result", "turned off"),
        CheckResult.NOT_APPLICABLE: pgettext("check result", "not applicable"),
    }
    return labels[result]


def message_class_label(value: MessageClass) -> str:
    """Name the class of a stored message in the active locale."""
    labels = {
        MessageClass.EVIDENCE: pgettext("message class", "evidence"),
        MessageClass.UNRELATED: pgettext("message class", "unrelated"),
        MessageClass.QUARANTINED: pgettext("message class", "quarantined"),
    }
    return labels[value]


def archive_problem_label(kind: ProblemKind) -> str:
    """Name an archive problem in the active locale."""
    labels = {
        ProblemKind.MISSING: pgettext("archive problem", "missing"),
        ProblemKind.ALTERED: pgettext("archive problem", "altered"),
    }
    return labels[kind]


def current_locale() -> str:
    """The locale whose catalog is active: ``es_CO`` or ``en``."""
    return active_locale()


def counted(template: str, count: int) -> str:
    """Fill the ``{count}`` of an ``ngettext`` result with ``count`` in the locale's digits."""
    return template.format(count=format_count(count))


def format_time(value: datetime | None, zone: ZoneInfo, locale: str | None = None) -> str:
    """Format an aware datetime in ``zone`` with its offset, as the locale writes dates."""
    if value is None:
        return ""
    locale = locale or current_locale()
    return format_datetime(value.astimezone(zone), _DATETIME_PATTERNS[locale], locale=locale)


def format_time_of_day(value: datetime, locale: str | None = None) -> str:
    """Format the local time of day of an aware datetime, as the locale writes it."""
    return format_time_only(value.astimezone(), "HH:mm:ss", locale=locale or current_locale())


def format_count(value: int, locale: str | None = None) -> str:
    """Format a whole number with the locale's grouping separator."""
    return format_decimal(value, locale=locale or current_locale())


def trust_reasons_text(reasons: str, translate: Translate = _) -> str:
    """Join the stored authenticity problems into one line; ``translate=str`` keeps English."""
    contextual: Callable[[str, str], str] = pgettext if translate is _ else _no_context
    lines = reasons.splitlines()
    return "; ".join(trust_reason_text(line, translate, contextual) for line in lines)


def _no_context(_context: str, message: str) -> str:
    return message


def send_reason(view: SendView, zone: ZoneInfo, translate: Translate = _) -> str:
    """Explain a send's state in one line.

    ``translate`` is ``_`` for people and ``str`` for scripts, which read English.
    """
    locale = current_locale() if translate is _ else "en"
    detail = failure_detail(view.smtp_code, view.smtp_detail, view.evidence_reason)
    if view.state is SendState.UNVERIFIED and view.trust_reasons:
        detail = trust_reasons_text(view.trust_reasons, translate)
    candidates = (view.candidates or "").split(",")
    return translate(REASON_TEMPLATES[view.state]).format(
        certificate=view.certificate_id or "?",
        delivered=format_time(view.delivered_at, zone, locale),
        detail=detail or translate(NO_REASON),
        candidates=", ".join(f"#{number}" for number in candidates),
        deadline=format_time(view.deadline, zone, locale),
    )
