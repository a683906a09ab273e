"""Readings of messages: the plain data that reader workers send back to the ingest process.

This module imports no parser (pyHanko, pypdf, dkimpy), so the process that hands messages
to the workers and unpickles their readings never loads one.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.outcomes import CheckResult, EvidenceKind, MessageClass, TrustVerdict


@dataclass(frozen=True)
class DkimVerdict:
    """The DKIM result of one message; ``domain`` and ``selector`` are of the signature used.

    For PASS they are the verifying signature's; for FAIL, the first signature's.
    """

    result: CheckResult
    domain: str | None = None
    selector: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignatureVerdict:
    """The result of validating one PDF's signature.

    ``signed_at`` is the trusted timestamp's time when there is one, else the time the
    signer reports. ``signer`` is the signer certificate's subject in RFC 4514 form.
    """

    result: CheckResult
    signer: str | None = None
    signed_at: datetime | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Authenticity:
    """Every check's result for one piece of evidence, and the policy's verdict on them.

    ``reasons`` names each failed check, prefixed by the check, in the order DKIM, PDF
    signature, cross-checks.
    """

    dkim: DkimVerdict
    signature: SignatureVerdict
    cross_check: CheckResult
    verdict: TrustVerdict
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceRecord:
    """The evidence that one certificate or one notice records about one send and recipient.

    Times are aware and in UTC. ``recipient`` and ``sender`` are lowercased addresses without
    display names, except that ``sender`` keeps the printed text when it contains no address.
    ``subject`` and ``original_message_id`` are those of the original send, as the certificate
    or notice prints them. ``authenticity`` holds the Trust stage's checks and verdict.
    """

    kind: EvidenceKind
    source: str
    certificate_id: str | None
    sender: str | None
    recipient: str | None
    subject: str | None
    original_message_id: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    status_text: str | None
    smtp_code: str | None
    smtp_detail: str | None
    reason: str | None
    content_hash: str | None
    attachment_name: str | None
    attachment_sha256: str | None
    raw_text: str
    authenticity: Authenticity | None = None


class QuarantineCode(StrEnum):
    """The reason a message from the provider was quarantined instead of read as evidence."""

    MALFORMED_MESSAGE = "malformed_message"
    NO_CERTIFICATE = "no_certificate"
    UNREADABLE_PDF = "unreadable_pdf"
    MISSING_FIELDS = "missing_fields"
    READER_ERROR = "reader_error"
    LIMIT_EXCEEDED = "limit_exceeded"
    READER_CRASHED = "reader_crashed"


@dataclass(frozen=True)
class MessageReading:
    """The outcome of reading one message; ``quarantine_*`` is set only when quarantined."""

    classification: MessageClass
    header_message_id: str | None
    from_address: str | None
    subject: str | None
    date: datetime | None
    evidence: tuple[EvidenceRecord, ...]
    quarantine_code: QuarantineCode | None
    quarantine_detail: str | None


def unreadable_reading(code: QuarantineCode, detail: str) -> MessageReading:
    """The reading of a message quarantined before anything of it could be read."""
    return MessageReading(
        classification=MessageClass.QUARANTINED,
        header_message_id=None,
        from_address=None,
        subject=None,
        date=None,
        evidence=(),
        quarantine_code=code,
        quarantine_detail=detail,
    )
