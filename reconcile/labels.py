"""The words people read for the states of sends and the kinds of evidence, in any catalog.

The CLI passes the active locale's functions and alert emails pass the project's catalog. Short
words carry a gettext context, because Spanish needs different words for the same English one:
a send is "rechazado" while a piece of evidence of that kind is "rechazada".
"""

from collections.abc import Callable

from config.i18n import N_
from monitor.models import EvidenceKind
from monitor.reading_results import QuarantineCode
from reconcile.models import SendState

Translate = Callable[[str], str]
ContextTranslate = Callable[[str, str], str]

QUARANTINE_LABELS = {
    QuarantineCode.MALFORMED_MESSAGE: N_("malformed message"),
    QuarantineCode.NO_CERTIFICATE: N_("no certificate found"),
    QuarantineCode.UNREADABLE_PDF: N_("unreadable PDF"),
    QuarantineCode.MISSING_FIELDS: N_("certificate fields missing"),
    QuarantineCode.READER_ERROR: N_("reader error"),
    QuarantineCode.LIMIT_EXCEEDED: N_("over a size or time limit"),
    QuarantineCode.READER_CRASHED: N_("the reader crashed"),
}

REASON_TEMPLATES = {
    SendState.CERTIFIED: N_("Certificate {certificate}, delivered {delivered}"),
    SendState.DELIVERY_FAILED: N_("Delivery failed: {detail}"),
    SendState.REJECTED: N_("Lleida.net did not certify it: {detail}"),
    SendState.AMBIGUOUS: N_("Several pieces of evidence fit: {candidates}"),
    SendState.NOT_COPIED: N_("The send log says Lleida.net was not in copy"),
    SendState.MISSING: N_("No evidence by the deadline {deadline}"),
    SendState.PENDING: N_("Waiting for evidence until {deadline}"),
    SendState.UNVERIFIED: N_("The evidence failed its authenticity checks: {detail}"),
}
NO_REASON = N_("no reason given")


def state_labels(pgettext: ContextTranslate) -> dict[SendState, str]:
    """Name every send state with ``pgettext`` (a catalog's method or ``config.i18n``'s)."""
    return {
        SendState.PENDING: pgettext("send state", "pending"),
        SendState.CERTIFIED: pgettext("send state", "certified"),
        SendState.DELIVERY_FAILED: pgettext("send state", "delivery failed"),
        SendState.REJECTED: pgettext("send state", "rejected"),
        SendState.MISSING: pgettext("send state", "not certified"),
        SendState.NOT_COPIED: pgettext("send state", "Lleida.net not in copy"),
        SendState.UNVERIFIED: pgettext("send state", "unverified"),
        SendState.AMBIGUOUS: pgettext("send state", "ambiguous"),
    }


def evidence_kind_labels(pgettext: ContextTranslate) -> dict[EvidenceKind, str]:
    """Name every kind of evidence with ``pgettext``."""
    return {
        EvidenceKind.DELIVERED: pgettext("evidence kind", "delivered"),
        EvidenceKind.DELIVERY_FAILED: pgettext("evidence kind", "delivery failed"),
        EvidenceKind.REJECTED: pgettext("evidence kind", "rejected"),
    }


def quarantine_label(code: str, gettext: Translate) -> str:
    """Name a quarantine code with ``gettext``; an unknown code is returned as it is."""
    try:
        return gettext(QUARANTINE_LABELS[QuarantineCode(code)])
    except ValueError:
        return code


def quarantine_reason_text(reason: str, gettext: Translate) -> str:
    """Translate the code of a stored ``code: detail`` quarantine reason; the detail stays."""
    code, separator, detail = reason.partition(": ")
    return f"{quarantine_label(code, gettext)}{separator}{detail}"


def trust_reason_text(reason: str, gettext: Translate, pgettext: ContextTranslate) -> str:
    """Translate one stored ``check: reason`` line of an authenticity verdict.

    The check's name is always translated. The reason is translated only when it is one of the
    fixed texts that the checks mark with ``N_``. A reason that embeds data stays as stored.
    """
    checks = {
        "DKIM": pgettext("authenticity check", "DKIM"),
        "PDF signature": pgettext("authenticity check", "PDF signature"),
        "cross-check": pgettext("authenticity check", "cross-check"),
    }
    # TODO(trust reasons stored as codes): reasons that embed data, such as a DKIM domain or a
    # PDF signer, are stored as English text, so they stay English until they are stored as a
    # code with its values.
    check, separator, text = reason.partition(": ")
    if not separator or check not in checks:
        return gettext(reason)
    return f"{checks[check]}: {gettext(text)}"
