"""Read one raw message: classify it and turn its certificates or notice into evidence.

``read_message`` never raises for bad input. The rules, in order:

1. Bytes past a ceiling of ``[limits]`` (size, header size, MIME parts, nesting depth, and
   for a PDF its size, pages and decompressed streams) are quarantined (LIMIT_EXCEEDED) with
   the limit named. Bytes that are not a message are quarantined (MALFORMED_MESSAGE).
2. The provider message is the message itself when its From is the provider's, otherwise the
   first forwarded message (``message/rfc822``) whose From is. Without one, it is UNRELATED.
   From alone proves nothing: each record carries the Trust stage's checks
   (``monitor.authenticity``) of DKIM, the PDF signature and the cross-checks.
3. Its PDFs (attached, embedded in a PDF, or in a message it forwards) are read, each once.
   A PDF with enough certificate labels is a certificate, whatever the subject says, because
   an original subject may itself contain "invoice".
4. A subject that matches the profile's ignore patterns and carries none of its subject
   prefixes makes the message UNRELATED when no certificate was found.
5. Any PDF that cannot be read quarantines the message (UNREADABLE_PDF), since it may be a
   certificate. A certificate with no recipient or no time quarantines it (MISSING_FIELDS).
   Either way no evidence of that message is returned, so a reprocess reads it whole.
6. Certificates give one DELIVERED or DELIVERY_FAILED record each.
7. Without certificates, subject or body text that matches a rejection pattern gives one
   REJECTED record per recipient the notice names (or one without a recipient).
8. Anything else from the provider is quarantined (NO_CERTIFICATE).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from config.provider_settings import ProviderProfile, ReadingLimits
from monitor.authenticity import TrustContext, trust_context_for
from monitor.certificate_pdf import CertificatePdfReading, PdfDocumentText, read_certificate_pdf
from monitor.certificate_text import (
    MIN_CERTIFICATE_LABELS,
    EvidenceFields,
    count_certificate_labels,
    read_evidence_fields,
)
from monitor.cross_checks import CertificateClaims, EmailContext, certificate_problems
from monitor.limits import LimitExceeded, check_raw_message
from monitor.mime import Attachment, MalformedMessageError, ParsedMessage, parse_message
from monitor.outcomes import CheckResult, EvidenceKind, MessageClass
from monitor.provider import ProviderRules, rules_for
from monitor.reading_results import (
    DkimVerdict,
    EvidenceRecord,
    MessageReading,
    QuarantineCode,
    SignatureVerdict,
    unreadable_reading,
)

log = logging.getLogger(__name__)


class InProcessReader:
    """Reads in the calling process, with the size and structure limits but no CPU or memory
    ceiling. For unit tests and tools that read one trusted file."""

    def __init__(self, limits: ReadingLimits | None = None) -> None:
        self.limits = limits or ReadingLimits()

    def start(self) -> None:
        """Nothing to start: reading happens in the calling process."""

    def read_many(
        self, messages: Sequence[tuple[str, bytes]], profile: ProviderProfile
    ) -> dict[str, MessageReading]:
        return {key: read_message(raw, profile, self.limits) for key, raw in messages}


SOURCE_PDF = "pdf"
SOURCE_EMAIL = "email"


def read_message(
    raw: bytes, profile: ProviderProfile, limits: ReadingLimits | None = None
) -> MessageReading:
    """Classify ``raw`` and read the evidence it carries; see the module docstring.

    ``limits`` defaults to the defaults of ``[limits]``. Raises only
    monitor.trust_roots.TrustRootError, for a trust root file that cannot be read, and
    MemoryError, which the reader process turns into a quarantine.
    """
    limits = limits or ReadingLimits()
    trust = trust_context_for(profile)
    try:
        check_raw_message(raw, limits)
        message = parse_message(raw, limits)
    except LimitExceeded as exc:
        return _unparsed(QuarantineCode.LIMIT_EXCEEDED, str(exc))
    except MalformedMessageError as exc:
        return _unparsed(QuarantineCode.MALFORMED_MESSAGE, str(exc))
    except MemoryError:
        raise
    except Exception as exc:
        # A parser bug must quarantine one message, not stop the ingest of the rest.
        log.exception("Parsing a message failed, so it is quarantined")
        return _unparsed(QuarantineCode.READER_ERROR, f"{type(exc).__name__}: {exc}")

    context = _ReadContext(rules_for(profile), trust, limits)
    try:
        reading = _read_parsed(message, context)
    except LimitExceeded as exc:
        return _reading(message, MessageClass.QUARANTINED, QuarantineCode.LIMIT_EXCEEDED, str(exc))
    except MemoryError:
        raise
    except Exception as exc:
        # A bug in the reader must quarantine one message, not stop the ingest of the rest.
        log.exception("Reading message %s failed, so it is quarantined", message.message_id)
        detail = f"{type(exc).__name__}: {exc}"
        return _reading(message, MessageClass.QUARANTINED, QuarantineCode.READER_ERROR, detail)

    log.debug(
        "Read message %s: %s, %d evidence record(s)",
        message.message_id,
        reading.classification,
        len(reading.evidence),
    )
    return reading


@dataclass(frozen=True)
class _ReadContext:
    """What reading one message needs besides the message: rules, trust and limits."""

    rules: ProviderRules
    trust: TrustContext
    limits: ReadingLimits


def _read_parsed(message: ParsedMessage, context: _ReadContext) -> MessageReading:
    rules = context.rules
    provider_message = _provider_message(message, rules)
    if provider_message is None:
        return _reading(message, MessageClass.UNRELATED)

    subject = provider_message.subject or ""
    ignored = rules.is_ignored(subject) and not rules.has_subject_prefix(subject)
    pdfs = _unique_pdfs(provider_message)
    if ignored and not pdfs:
        return _reading(message, MessageClass.UNRELATED)
    return _read_provider_message(message, provider_message, pdfs, ignored, context)


def _read_provider_message(
    message: ParsedMessage,
    provider_message: ParsedMessage,
    pdfs: list[Attachment],
    ignored: bool,
    context: _ReadContext,
) -> MessageReading:
    readings = [(pdf, _read_pdf(pdf, context)) for pdf in pdfs]
    certificates = [
        (pdf, reading.certificate) for pdf, reading in readings if reading.certificate is not None
    ]
    if ignored and not certificates:
        return _reading(message, MessageClass.UNRELATED)

    unreadable = [(pdf, reading.error) for pdf, reading in readings if reading.error]
    if unreadable:
        detail = "; ".join(f"{_name(pdf)}: {error}" for pdf, error in unreadable)
        return _reading(message, MessageClass.QUARANTINED, QuarantineCode.UNREADABLE_PDF, detail)
    if certificates:
        return _read_certificates(message, provider_message, certificates, context)
    return _read_notice(message, provider_message, len(pdfs), context)


def _read_notice(
    message: ParsedMessage, provider_message: ParsedMessage, pdf_count: int, context: _ReadContext
) -> MessageReading:
    rules = context.rules
    if _is_rejection(provider_message, rules):
        records = _rejection_records(provider_message, rules)
        dkim = _check_dkim(provider_message, context)
        email = _email_context(provider_message, certificate_count=0)
        no_pdf = context.trust.check_signature(None)
        checked = [
            _authenticated(record, None, dkim=dkim, signature=no_pdf, email=email, context=context)
            for record in records
        ]
        return _evidence(message, checked)

    detail = _no_certificate_detail(pdf_count)
    return _reading(message, MessageClass.QUARANTINED, QuarantineCode.NO_CERTIFICATE, detail)


def _provider_message(message: ParsedMessage, rules: ProviderRules) -> ParsedMessage | None:
    """Return the message, or the first message it forwards, sent by the provider."""
    for candidate in message.all_messages():
        if len(candidate.from_addresses) == 1 and rules.is_provider_sender(
            candidate.from_addresses[0]
        ):
            return candidate
    return None


def _unique_pdfs(message: ParsedMessage) -> list[Attachment]:
    """Return the PDF attachments of ``message`` and its forwarded ones, each content once."""
    seen: set[str] = set()
    pdfs = []
    for attachment in message.all_attachments():
        if attachment.is_pdf and attachment.sha256 not in seen:
            seen.add(attachment.sha256)
            pdfs.append(attachment)
    return pdfs


def _read_pdf(pdf: Attachment, context: _ReadContext) -> CertificatePdfReading:
    rules = context.rules
    return read_certificate_pdf(
        pdf.data,
        lambda text: count_certificate_labels(text, rules),
        MIN_CERTIFICATE_LABELS,
        context.limits,
    )


def _read_certificates(
    message: ParsedMessage,
    provider_message: ParsedMessage,
    certificates: list[tuple[Attachment, PdfDocumentText]],
    context: _ReadContext,
) -> MessageReading:
    rules = context.rules
    # The evidence email's subject names the original send only when it covers one certificate.
    fallback_subject = None
    if len(certificates) == 1 and provider_message.subject:
        fallback_subject = rules.strip_subject_prefixes(provider_message.subject) or None

    read: list[tuple[EvidenceRecord, EvidenceFields, Attachment, PdfDocumentText]] = []
    for pdf, document in certificates:
        fields = read_evidence_fields(document.text, rules)
        if fields.problems:
            detail = f"{_name(pdf)}: " + "; ".join(fields.problems)
            code = QuarantineCode.MISSING_FIELDS
            return _reading(message, MessageClass.QUARANTINED, code, detail)
        record = _certificate_record(fields, pdf, document.text, fallback_subject)
        read.append((record, fields, pdf, document))

    dkim = _check_dkim(provider_message, context)
    email = _email_context(provider_message, certificate_count=len(certificates))
    records = [
        _authenticated(
            record,
            fields,
            dkim=dkim,
            signature=_signature_of(pdf, document, context),
            email=email,
            context=context,
        )
        for record, fields, pdf, document in read
    ]
    return _evidence(message, records)


def _check_dkim(provider_message: ParsedMessage, context: _ReadContext) -> DkimVerdict:
    return context.trust.check_dkim(provider_message.wire_bytes, provider_message.from_address)


def _signature_of(
    pdf: Attachment, document: PdfDocumentText, context: _ReadContext
) -> SignatureVerdict:
    """Validate the attached PDF, or the embedded certificate when only that one is signed."""
    verdict = context.trust.check_signature(pdf.data)
    if verdict.result is CheckResult.NONE and document.embedded_name is not None:
        return context.trust.check_signature(document.data)
    return verdict


def _email_context(provider_message: ParsedMessage, certificate_count: int) -> EmailContext:
    return EmailContext(provider_message.subject, provider_message.date, certificate_count)


def _authenticated(
    record: EvidenceRecord,
    fields: EvidenceFields | None,
    *,
    dkim: DkimVerdict,
    signature: SignatureVerdict,
    email: EmailContext,
    context: _ReadContext,
) -> EvidenceRecord:
    """Return ``record`` with its authenticity checked and judged."""
    claims = CertificateClaims(
        recipient=record.recipient,
        subject=fields.subject if fields is not None else None,
        sent_at=record.sent_at,
        delivered_at=record.delivered_at,
        text=record.raw_text,
    )
    problems = certificate_problems(claims, email, signature.signed_at, context.rules)
    return replace(record, authenticity=context.trust.judge(dkim, signature, problems))


def _certificate_record(
    fields: EvidenceFields, pdf: Attachment, text: str, fallback_subject: str | None
) -> EvidenceRecord:
    kind = EvidenceKind.DELIVERY_FAILED if fields.failed else EvidenceKind.DELIVERED
    return _record(
        kind,
        SOURCE_PDF,
        fields,
        recipient=fields.recipients[0],
        subject=fields.subject or fallback_subject,
        reason=fields.reason,
        attachment=pdf,
        raw_text=text,
    )


def _is_rejection(message: ParsedMessage, rules: ProviderRules) -> bool:
    return rules.is_rejection(message.subject or "") or rules.is_rejection(message.body_text)


def _rejection_records(message: ParsedMessage, rules: ProviderRules) -> list[EvidenceRecord]:
    """Return one REJECTED record per recipient the notice names, or one without recipient."""
    text = message.body_text
    fields = read_evidence_fields(text, rules)
    subject = fields.subject
    if subject is None and message.subject:
        subject = rules.strip_subject_prefixes(message.subject) or None
    reason = (
        fields.reason or rules.rejection_line(text) or rules.rejection_line(message.subject or "")
    )

    recipients: tuple[str | None, ...] = fields.recipients or (None,)
    return [
        _record(
            EvidenceKind.REJECTED,
            SOURCE_EMAIL,
            fields,
            recipient=recipient,
            subject=subject,
            reason=reason,
            attachment=None,
            raw_text=text,
        )
        for recipient in recipients
    ]


def _record(
    kind: EvidenceKind,
    source: str,
    fields: EvidenceFields,
    *,
    recipient: str | None,
    subject: str | None,
    reason: str | None,
    attachment: Attachment | None,
    raw_text: str,
) -> EvidenceRecord:
    return EvidenceRecord(
        kind=kind,
        source=source,
        certificate_id=fields.certificate_id,
        sender=fields.sender,
        recipient=recipient,
        subject=subject,
        original_message_id=fields.message_id,
        sent_at=fields.sent_at,
        delivered_at=fields.delivered_at,
        status_text=fields.status_text,
        smtp_code=fields.smtp_code,
        smtp_detail=fields.smtp_detail,
        reason=reason,
        content_hash=fields.content_hash,
        attachment_name=attachment.filename if attachment else None,
        attachment_sha256=attachment.sha256 if attachment else None,
        raw_text=raw_text,
    )


def _no_certificate_detail(pdf_count: int) -> str:
    if pdf_count == 0:
        return "no PDF attachment, and no rejection wording in the subject or body"
    return f"{pdf_count} PDF attachment(s), none with at least {MIN_CERTIFICATE_LABELS} labels"


def _name(pdf: Attachment) -> str:
    return repr(pdf.filename) if pdf.filename else f"unnamed {pdf.content_type} part"


def _evidence(message: ParsedMessage, records: list[EvidenceRecord]) -> MessageReading:
    return _reading(message, MessageClass.EVIDENCE, evidence=tuple(records))


def _reading(
    message: ParsedMessage,
    classification: MessageClass,
    code: QuarantineCode | None = None,
    detail: str | None = None,
    evidence: tuple[EvidenceRecord, ...] = (),
) -> MessageReading:
    return MessageReading(
        classification=classification,
        header_message_id=message.message_id,
        from_address=message.from_address,
        subject=message.subject,
        date=message.date,
        evidence=evidence,
        quarantine_code=code,
        quarantine_detail=detail,
    )


def _unparsed(code: QuarantineCode, detail: str) -> MessageReading:
    return unreadable_reading(code, detail)
