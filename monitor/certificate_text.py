"""Read the labelled fields of a certificate's text or a service notice's body.

A field is a line ``Label: value``, or a line holding only the label (with or without the
colon) followed by the value on the next non-empty line. Labels come from the provider
profile and are compared without regard to case, accents or the trailing colon. A label may
carry a parenthesised note before its colon, such as ``Fecha de entrega (CET):``; for a time
field the note is read as the zone. The first value of each field wins, so the certificate
page outranks a technical annex that repeats ``From:`` or ``Subject:`` further down.

NOTE: a value is one line. A value that the PDF wraps onto a second line is cut at the line
end, and a label followed by its value without a colon (``Remitente Ana``) is not found.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.mime import strip_angle_brackets
from monitor.provider import LabelField, ProviderRules, collapse_whitespace
from monitor.timestamps import parse_printed_time

# A real certificate prints about eight labels; a PDF with fewer than this is some other
# document (an invoice, the original message's attachment).
MIN_CERTIFICATE_LABELS = 3
TIME_FIELDS = (LabelField.SENT_AT, LabelField.DELIVERED_AT)

_WITH_COLON = re.compile(r"^(?P<label>[^:()]+?)\s*(?:\((?P<note>[^()]*)\)\s*)?:\s*(?P<value>.*)$")
_LABEL_ALONE = re.compile(r"^(?P<label>[^:()]+?)\s*(?:\((?P<note>[^()]*)\)\s*)?:?\s*$")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# RFC 3463 enhanced status code after an RFC 5321 reply code: "550 5.1.1", "451-4.7.1".
_ENHANCED_REPLY = re.compile(
    r"(?<![\d.])(?P<code>[245]\d\d)[ -](?P<status>[245]\.\d{1,3}\.\d{1,3})(?![\d.])"
)
_FAILURE_REPLY = re.compile(
    r"(?<![\d.])(?P<code>[45]\d\d)[ -](?P<status>[45]\.\d{1,3}\.\d{1,3})(?![\d.])"
)
_BASIC_REPLY = re.compile(r"(?<![\d:./])(?P<code>[245]\d\d)(?![\d:./])(?=\s+[A-Za-z<])")


@dataclass(frozen=True)
class LabelledText:
    """The values found after labels; ``labels`` also contains labels printed with no value."""

    values: Mapping[LabelField, str]
    labels: frozenset[LabelField]

    def get(self, field: LabelField) -> str | None:
        """Return the field's value, or None when its label is missing or has no value."""
        return self.values.get(field)


@dataclass(frozen=True)
class SmtpReply:
    """An SMTP reply found in the text: ``code`` like ``550 5.1.1``, ``detail`` the full line."""

    code: str
    detail: str


@dataclass(frozen=True)
class EvidenceFields:
    """The fields of one certificate or notice, parsed; ``problems`` names what is missing."""

    certificate_id: str | None
    sender: str | None
    recipients: tuple[str, ...]
    subject: str | None
    message_id: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    status_text: str | None
    failed: bool
    smtp_code: str | None
    smtp_detail: str | None
    reason: str | None
    content_hash: str | None
    problems: tuple[str, ...]


def read_labels(text: str, rules: ProviderRules) -> LabelledText:
    """Return the value of every field whose label ``text`` prints."""
    lines = [line.strip() for line in text.splitlines()]
    values: dict[LabelField, str] = {}
    labels: set[LabelField] = set()
    index = 0
    while index < len(lines):
        found = _labelled_line(lines[index], rules)
        index += 1
        if found is None:
            continue

        field, value, note = found
        labels.add(field)
        if not value:
            value, index = _value_below(lines, index, rules)
        if value and note and field in TIME_FIELDS:
            value = f"{value} ({note})"
        if value:
            values.setdefault(field, value)
    return LabelledText(values, frozenset(labels))


def count_certificate_labels(text: str, rules: ProviderRules) -> int:
    """Return how many distinct fields ``text`` prints a label for."""
    return len(read_labels(text, rules).labels)


def _labelled_line(line: str, rules: ProviderRules) -> tuple[LabelField, str, str | None] | None:
    match = _WITH_COLON.match(line) or _LABEL_ALONE.match(line)
    if match is None:
        return None

    field = rules.label_field(match["label"])
    if field is None:
        return None
    value = collapse_whitespace(match.groupdict().get("value") or "")
    return field, value, match["note"]


def _value_below(lines: list[str], start: int, rules: ProviderRules) -> tuple[str, int]:
    """Return the value on the first non-empty line from ``start``, and the index after it.

    That line is the next label instead of a value only when written ``Label:``, because a
    value may be a word that is also a label without its colon ("Status" then "Delivered").
    """
    for index in range(start, len(lines)):
        line = lines[index]
        if not line:
            continue
        if _WITH_COLON.match(line) and _labelled_line(line, rules) is not None:
            return "", index
        return collapse_whitespace(line), index + 1
    return "", len(lines)


def addresses_in_text(text: str) -> tuple[str, ...]:
    """Return the email addresses written in ``text``, lowercased, in order."""
    return tuple(address.lower() for address in _ADDRESS.findall(text))


def find_smtp_reply(text: str) -> SmtpReply | None:
    """Return the first SMTP reply in ``text``: a code with its enhanced status, or a bare code.

    The detail runs from the code to the end of its line.
    """
    match = _ENHANCED_REPLY.search(text) or _BASIC_REPLY.search(text)
    if match is None:
        return None
    return _reply_from(text, match)


def _reply_from(text: str, match: re.Match[str]) -> SmtpReply:
    code = match["code"]
    if match.groupdict().get("status"):
        code = f"{code} {match['status']}"
    line_end = text.find("\n", match.start())
    detail = text[match.start() : None if line_end < 0 else line_end]
    return SmtpReply(code, collapse_whitespace(detail))


def read_evidence_fields(text: str, rules: ProviderRules) -> EvidenceFields:
    """Read the fields of a certificate or notice and name the ones a certificate needs."""
    labelled = read_labels(text, rules)
    sent_at = _time_of(labelled, LabelField.SENT_AT, rules)
    delivered_at = _time_of(labelled, LabelField.DELIVERED_AT, rules)
    status_text = labelled.get(LabelField.STATUS)
    failed = _records_failure(labelled, rules)
    reply = _smtp_reply(text, labelled, failed)
    recipient_text = labelled.get(LabelField.RECIPIENT)
    recipients = addresses_in_text(recipient_text or "")

    return EvidenceFields(
        certificate_id=labelled.get(LabelField.CERTIFICATE_ID),
        sender=_address_or_text(labelled.get(LabelField.SENDER)),
        recipients=recipients,
        subject=labelled.get(LabelField.SUBJECT),
        message_id=strip_angle_brackets(labelled.get(LabelField.MESSAGE_ID)),
        sent_at=sent_at,
        delivered_at=delivered_at,
        status_text=status_text,
        failed=failed,
        smtp_code=reply.code if reply else None,
        smtp_detail=labelled.get(LabelField.SMTP_DETAIL) or (reply.detail if reply else None),
        reason=labelled.get(LabelField.REASON),
        content_hash=labelled.get(LabelField.CONTENT_HASH),
        problems=_certificate_problems(labelled, recipients, sent_at or delivered_at),
    )


def _time_of(labelled: LabelledText, field: LabelField, rules: ProviderRules) -> datetime | None:
    value = labelled.get(field)
    if value is None:
        return None
    return parse_printed_time(value, rules.timezone)


def _records_failure(labelled: LabelledText, rules: ProviderRules) -> bool:
    checked = (labelled.get(LabelField.STATUS), labelled.get(LabelField.DELIVERED_AT))
    return any(value is not None and rules.is_failure(value) for value in checked)


def _smtp_reply(text: str, labelled: LabelledText, failed: bool) -> SmtpReply | None:
    """Find the reply in the SMTP, delivery and status fields, then in a failure's annex."""
    for field in (LabelField.SMTP_DETAIL, LabelField.DELIVERED_AT, LabelField.STATUS):
        reply = find_smtp_reply(labelled.get(field) or "")
        if reply is not None:
            return reply
    if not failed:
        return None
    match = _FAILURE_REPLY.search(text)
    return None if match is None else _reply_from(text, match)


def _address_or_text(value: str | None) -> str | None:
    if value is None:
        return None
    addresses = addresses_in_text(value)
    return addresses[0] if addresses else value


def _certificate_problems(
    labelled: LabelledText, recipients: tuple[str, ...], any_time: datetime | None
) -> tuple[str, ...]:
    problems = []
    recipient_text = labelled.get(LabelField.RECIPIENT)
    if recipient_text is None:
        problems.append("recipient: no value after a recipient label")
    elif not recipients:
        problems.append(f"recipient: no email address in {recipient_text!r}")

    if any_time is None:
        printed = [
            f"{field}={labelled.get(field)!r}" for field in TIME_FIELDS if labelled.get(field)
        ]
        printed_text = ", ".join(printed) or "no time label"
        problems.append(f"time: no sending or delivery time could be read ({printed_text})")
    return tuple(problems)
