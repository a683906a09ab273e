"""Reading whole messages: classification, evidence records and quarantine codes."""

from datetime import UTC, datetime, timedelta

import pytest

import monitor.reading
from monitor.models import EvidenceKind, MessageClass
from monitor.reading import read_message
from monitor.reading_results import EvidenceRecord, MessageReading, QuarantineCode
from tests.evidence_factory import (
    FORWARDER,
    PROVIDER_FROM,
    CertificateFields,
    Charset,
    FilenameStyle,
    Language,
    Layout,
    Outcome,
    Packaging,
    PdfFile,
    RejectionReason,
    TimeStyle,
    TransferEncoding,
    attachment_filename,
    certificate_pdf,
    corrupt_pdf,
    evidence_email,
    invoice_email,
    lleida_profile,
    plain_pdf,
    rejection_email,
    unrelated_email,
)

SENT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
DELIVERED = datetime(2026, 3, 2, 14, 5, 7, tzinfo=UTC)
RECIPIENT = "asuncion.penaloza@correo.example"
SUBJECT = "Estado de cuenta negocio 1042 - Torres del Parque"
ORIGINAL_ID = "20260302140500.1042@paco.constructora.example"
USER_UNKNOWN = f"550 5.1.1 <{RECIPIENT}>: Recipient address rejected: User unknown"


def read(raw: bytes) -> MessageReading:
    return read_message(raw, lleida_profile())


def only_record(raw: bytes) -> EvidenceRecord:
    reading = read(raw)
    assert reading.classification is MessageClass.EVIDENCE, reading.quarantine_detail
    assert len(reading.evidence) == 1
    return reading.evidence[0]


def quarantined(raw: bytes) -> MessageReading:
    reading = read(raw)
    assert reading.classification is MessageClass.QUARANTINED
    assert reading.evidence == ()
    return reading


@pytest.mark.parametrize("language", list(Language))
def test_delivered_certificate(language: Language) -> None:
    record = only_record(evidence_email(CertificateFields(language=language)))

    assert record.kind is EvidenceKind.DELIVERED
    assert record.source == "pdf"
    assert record.certificate_id == "LLD-20260302-000123"
    assert record.sender == "cartera@constructora.example"
    assert record.recipient == RECIPIENT
    assert record.subject == SUBJECT
    assert record.original_message_id == ORIGINAL_ID
    assert record.sent_at == SENT
    assert record.delivered_at == DELIVERED
    assert record.smtp_code is None
    assert record.reason is None
    assert record.content_hash == CertificateFields().content_hash


@pytest.mark.parametrize("language", list(Language))
def test_bounced_certificate(language: Language) -> None:
    certificate = CertificateFields(language=language, outcome=Outcome.FAILED)

    record = only_record(evidence_email(certificate))

    assert record.kind is EvidenceKind.DELIVERY_FAILED
    assert record.delivered_at == DELIVERED
    assert record.smtp_code == "550 5.1.1"
    assert record.smtp_detail == USER_UNKNOWN


def test_bounce_with_other_smtp_reply() -> None:
    reply = "452 4.2.2 <asuncion.penaloza@correo.example>: Mailbox full"
    certificate = CertificateFields(outcome=Outcome.FAILED, smtp_detail=reply)

    record = only_record(evidence_email(certificate))

    assert record.kind is EvidenceKind.DELIVERY_FAILED
    assert record.smtp_code == "452 4.2.2"
    assert record.smtp_detail == reply


def test_message_header_fields() -> None:
    reading = read(evidence_email())

    assert reading.from_address == "noreply@certificado.lleida.net"
    assert reading.subject == f"Correo certificado: {SUBJECT}"
    assert reading.date == DELIVERED + timedelta(minutes=2)
    assert reading.header_message_id is not None
    assert not reading.header_message_id.startswith("<")
    assert reading.quarantine_code is None
    assert reading.quarantine_detail is None


def test_record_keeps_attachment_and_text() -> None:
    record = only_record(evidence_email())

    assert record.attachment_name == "Mail_LLD-20260302-000123.pdf"
    assert record.attachment_sha256 is not None
    assert len(record.attachment_sha256) == 64
    assert "Certificado de comunicación electrónica" in record.raw_text


@pytest.mark.parametrize("layout", list(Layout))
def test_certificate_layouts(layout: Layout) -> None:
    record = only_record(evidence_email(CertificateFields(layout=layout)))

    assert record.recipient == RECIPIENT
    assert record.delivered_at == DELIVERED


@pytest.mark.parametrize("style", list(TimeStyle))
@pytest.mark.parametrize("language", list(Language))
def test_time_styles(style: TimeStyle, language: Language) -> None:
    certificate = CertificateFields(time_style=style, language=language)

    record = only_record(evidence_email(certificate))

    assert record.sent_at == SENT
    assert record.delivered_at == DELIVERED


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # 01:59:59 CET, just before the change
        datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),  # 03:00:00 CEST, just after it
        datetime(2026, 10, 25, 0, 30, 0, tzinfo=UTC),  # 02:30 CEST, first of the repeated hour
        datetime(2026, 10, 25, 2, 0, 0, tzinfo=UTC),  # 03:00 CET, after the repeated hour
    ],
)
@pytest.mark.parametrize("style", [TimeStyle.NUMERIC, TimeStyle.NUMERIC_ZONE, TimeStyle.ISO])
def test_times_around_summer_time_change(moment: datetime, style: TimeStyle) -> None:
    certificate = CertificateFields(sent_at=moment, delivered_at=moment, time_style=style)

    record = only_record(evidence_email(certificate))

    assert record.sent_at == moment
    assert record.delivered_at == moment


def test_repeated_hour_with_zone_is_exact() -> None:
    moment = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, second of the repeated hour
    certificate = CertificateFields(sent_at=moment, time_style=TimeStyle.NUMERIC_ZONE)

    assert only_record(evidence_email(certificate)).sent_at == moment


def test_repeated_hour_without_zone_reads_first() -> None:
    moment = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, second of the repeated hour
    certificate = CertificateFields(sent_at=moment, time_style=TimeStyle.NUMERIC)

    record = only_record(evidence_email(certificate))

    assert record.sent_at == moment - timedelta(hours=1)


def test_times_printed_in_bogota_with_zone() -> None:
    certificate = CertificateFields(time_zone="America/Bogota", time_style=TimeStyle.ISO)

    assert only_record(evidence_email(certificate)).sent_at == SENT


@pytest.mark.parametrize(
    "packaging",
    [Packaging.OCTET_STREAM, Packaging.UNNAMED_OCTET_STREAM, Packaging.EMBEDDED],
)
def test_packagings(packaging: Packaging) -> None:
    record = only_record(evidence_email(packaging=packaging))

    assert record.kind is EvidenceKind.DELIVERED
    assert record.recipient == RECIPIENT


def test_embedded_certificate_keeps_outer_name() -> None:
    record = only_record(evidence_email(packaging=Packaging.EMBEDDED))

    assert record.attachment_name == "Mail_LLD-20260302-000123.pdf"
    assert "Certificado de comunicación electrónica / Email certificado" in record.raw_text


def test_unnamed_pdf_has_no_attachment_name() -> None:
    record = only_record(evidence_email(packaging=Packaging.UNNAMED_OCTET_STREAM))

    assert record.attachment_name is None


@pytest.mark.parametrize("style", [FilenameStyle.RFC2047, FilenameStyle.RFC2231])
def test_encoded_attachment_names(style: FilenameStyle) -> None:
    record = only_record(evidence_email(filename_style=style))

    assert record.attachment_name == attachment_filename(CertificateFields(), style)


@pytest.mark.parametrize("sender", [FORWARDER, PROVIDER_FROM])
def test_forwarded_evidence(sender: str) -> None:
    raw = evidence_email(CertificateFields(outcome=Outcome.FAILED), forwarded_by=sender)

    reading = read(raw)

    assert reading.classification is MessageClass.EVIDENCE
    assert reading.from_address == sender.split("<")[1].rstrip(">")
    assert [record.kind for record in reading.evidence] == [EvidenceKind.DELIVERY_FAILED]


def test_several_certificates_in_one_message() -> None:
    certificates = [
        CertificateFields(
            certificate_id=f"LLD-{number}",
            recipient=f"Comprador {number} <comprador{number}@correo.example>",
            outcome=Outcome.FAILED if number == 2 else Outcome.DELIVERED,
        )
        for number in (1, 2, 3)
    ]

    reading = read(evidence_email(certificates))

    assert [record.certificate_id for record in reading.evidence] == ["LLD-1", "LLD-2", "LLD-3"]
    assert [record.recipient for record in reading.evidence] == [
        "comprador1@correo.example",
        "comprador2@correo.example",
        "comprador3@correo.example",
    ]
    assert [record.kind for record in reading.evidence] == [
        EvidenceKind.DELIVERED,
        EvidenceKind.DELIVERY_FAILED,
        EvidenceKind.DELIVERED,
    ]


def test_email_subject_unused_for_several() -> None:
    certificates = [
        CertificateFields(certificate_id=f"LLD-{number}", omitted=frozenset({"subject"}))
        for number in (1, 2)
    ]

    reading = read(evidence_email(certificates))

    assert [record.subject for record in reading.evidence] == [None, None]


def test_email_subject_fills_missing_subject() -> None:
    certificate = CertificateFields(omitted=frozenset({"subject"}))

    assert only_record(evidence_email(certificate)).subject == SUBJECT


def test_same_pdf_twice_read_once() -> None:
    pdf = PdfFile("copia.pdf", certificate_pdf(CertificateFields()))

    reading = read(evidence_email(extra_pdfs=[pdf]))

    assert len(reading.evidence) == 1


def test_other_pdf_beside_certificate_ignored() -> None:
    statement = PdfFile("Estado_de_cuenta.pdf", plain_pdf(["Estado de cuenta", "Saldo: 0"]))

    assert only_record(evidence_email(extra_pdfs=[statement])).recipient == RECIPIENT


@pytest.mark.parametrize("reason", list(RejectionReason))
@pytest.mark.parametrize("language", list(Language))
def test_rejection_notice(reason: RejectionReason, language: Language) -> None:
    send = CertificateFields(language=language)

    record = only_record(rejection_email(send, reason))

    assert record.kind is EvidenceKind.REJECTED
    assert record.source == "email"
    assert record.recipient == RECIPIENT
    assert record.subject == SUBJECT
    assert record.original_message_id == ORIGINAL_ID
    assert record.sent_at == SENT
    assert record.reason is not None
    assert record.certificate_id is None
    assert record.attachment_name is None


def test_rejection_for_two_recipients() -> None:
    send = CertificateFields(recipient="a@correo.example, B <b@correo.example>")

    reading = read(rejection_email(send))

    assert [record.recipient for record in reading.evidence] == [
        "a@correo.example",
        "b@correo.example",
    ]
    assert {record.kind for record in reading.evidence} == {EvidenceKind.REJECTED}


def test_rejection_reason_text() -> None:
    record = only_record(rejection_email(reason=RejectionReason.TOO_LARGE))

    assert record.reason == "El mensaje supera el tamaño máximo de 20 MB."


@pytest.mark.parametrize("charset", [Charset.ISO_8859_1, Charset.WINDOWS_1252])
@pytest.mark.parametrize(
    "encoding", [TransferEncoding.QUOTED_PRINTABLE, TransferEncoding.EIGHT_BIT]
)
def test_rejection_body_charsets(charset: Charset, encoding: TransferEncoding) -> None:
    raw = rejection_email(charset=charset, transfer_encoding=encoding)

    record = only_record(raw)

    assert record.reason == "Saldo insuficiente para certificar el envío."
    assert "Asunción Peñaloza" in record.raw_text


def test_rejection_in_html() -> None:
    record = only_record(rejection_email(html=True))

    assert record.recipient == RECIPIENT
    assert record.reason == "Saldo insuficiente para certificar el envío."


def test_rejection_without_fields_uses_subject() -> None:
    raw = evidence_email(
        [], subject="Correo no certificado: Cuota inicial negocio 7", sender=PROVIDER_FROM
    )

    record = only_record(raw)

    assert record.kind is EvidenceKind.REJECTED
    assert record.subject == "Cuota inicial negocio 7"
    assert record.recipient is None
    assert record.reason == "Correo no certificado: Cuota inicial negocio 7"


def test_rejection_of_invoice_send_not_ignored() -> None:
    send = CertificateFields(subject="Factura de cuota inicial negocio 1042")

    record = only_record(rejection_email(send))

    assert record.kind is EvidenceKind.REJECTED
    assert record.subject == "Factura de cuota inicial negocio 1042"


def test_certificate_of_invoice_send_not_ignored() -> None:
    certificate = CertificateFields(subject="Factura de cuota inicial negocio 1042")

    record = only_record(evidence_email(certificate))

    assert record.subject == "Factura de cuota inicial negocio 1042"


def test_certificate_under_ignored_subject_still_read() -> None:
    raw = evidence_email(subject="Factura y certificado")

    assert only_record(raw).kind is EvidenceKind.DELIVERED


def test_provider_invoice_unrelated() -> None:
    reading = read(invoice_email())

    assert reading.classification is MessageClass.UNRELATED
    assert reading.evidence == ()
    assert reading.quarantine_code is None


def test_provider_invoice_with_corrupt_pdf_unrelated() -> None:
    pdf = PdfFile("Factura.pdf", corrupt_pdf())
    raw = evidence_email([], subject="Factura FV-2026-0042", extra_pdfs=[pdf])

    assert read(raw).classification is MessageClass.UNRELATED


def test_unrelated_message() -> None:
    reading = read(unrelated_email())

    assert reading.classification is MessageClass.UNRELATED
    assert reading.from_address == "mateo.quinones@proveedor.example"
    assert reading.subject == "Reunión de obra del jueves"
    assert reading.evidence == ()


def test_certificate_from_stranger_unrelated() -> None:
    raw = evidence_email(sender="Mateo Quiñones <mateo.quinones@proveedor.example>")

    assert read(raw).classification is MessageClass.UNRELATED


@pytest.mark.parametrize(
    "sender",
    [
        "Lleida.net <noreply@lleida.net.evil.example>",
        "Lleida.net <noreply@lleida-net.example>",
        "Lleida.net <noreply@xn--lleida-9ua.net>",
        "Lleida.net <noreply@certificado.lleid\u0430.net>",
    ],
)
def test_look_alike_sender_unrelated(sender: str) -> None:
    reading = read(evidence_email(sender=sender))

    assert reading.classification is MessageClass.UNRELATED
    assert reading.evidence == ()


def test_several_from_addresses_unrelated() -> None:
    raw = evidence_email().replace(b"From: ", b"From: attacker@evil.example, ", 1)

    assert read(raw).classification is MessageClass.UNRELATED


def test_corrupt_pdf_quarantined() -> None:
    raw = evidence_email(
        [], subject="Correo certificado: x", extra_pdfs=[PdfFile("Mail_9.pdf", corrupt_pdf())]
    )

    reading = quarantined(raw)

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("'Mail_9.pdf': PdfStreamError: ")


def test_corrupt_pdf_beside_certificate_quarantined() -> None:
    raw = evidence_email(extra_pdfs=[PdfFile("Mail_9.pdf", corrupt_pdf())])

    assert quarantined(raw).quarantine_code is QuarantineCode.UNREADABLE_PDF


def test_corrupt_unnamed_pdf_named_by_type() -> None:
    pdf = PdfFile(None, corrupt_pdf(), "application/octet-stream")
    raw = evidence_email([], subject="Correo certificado: x", extra_pdfs=[pdf])

    detail = quarantined(raw).quarantine_detail

    assert detail is not None
    assert detail.startswith("unnamed application/octet-stream part: ")


def test_provider_message_without_pdf_quarantined() -> None:
    raw = evidence_email([], subject="Correo certificado: Estado de cuenta")

    reading = quarantined(raw)

    assert reading.quarantine_code is QuarantineCode.NO_CERTIFICATE
    assert reading.quarantine_detail == (
        "no PDF attachment, and no rejection wording in the subject or body"
    )


def test_provider_message_with_other_pdf_quarantined() -> None:
    statement = PdfFile("Estado_de_cuenta.pdf", plain_pdf(["Estado de cuenta", "Saldo: 0"]))
    raw = evidence_email([], subject="Correo certificado: x", extra_pdfs=[statement])

    reading = quarantined(raw)

    assert reading.quarantine_code is QuarantineCode.NO_CERTIFICATE
    assert reading.quarantine_detail == "1 PDF attachment(s), none with at least 3 labels"


@pytest.mark.parametrize(
    ("omitted", "named"),
    [
        (frozenset({"recipient"}), "recipient: no value after a recipient label"),
        (frozenset({"sent_at", "delivered_at"}), "time: no sending or delivery time"),
    ],
)
def test_missing_fields_quarantined(omitted: frozenset[str], named: str) -> None:
    raw = evidence_email(CertificateFields(omitted=omitted))

    reading = quarantined(raw)

    assert reading.quarantine_code is QuarantineCode.MISSING_FIELDS
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("'Mail_LLD-20260302-000123.pdf': ")
    assert named in reading.quarantine_detail


def test_one_missing_field_quarantines_whole_message() -> None:
    certificates = [
        CertificateFields(certificate_id="LLD-1"),
        CertificateFields(certificate_id="LLD-2", omitted=frozenset({"recipient"})),
    ]

    reading = quarantined(evidence_email(certificates))

    assert reading.quarantine_code is QuarantineCode.MISSING_FIELDS


@pytest.mark.parametrize("raw", [b"", b"not an email at all", b"\x00\xff" * 50])
def test_not_a_message_quarantined(raw: bytes) -> None:
    reading = quarantined(raw)

    assert reading.quarantine_code is QuarantineCode.MALFORMED_MESSAGE
    assert reading.from_address is None


def test_reader_fault_quarantined(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        message = "reader bug"
        raise RuntimeError(message)

    monkeypatch.setattr(monitor.reading, "read_evidence_fields", broken)

    reading = quarantined(evidence_email())

    assert reading.quarantine_code is QuarantineCode.READER_ERROR
    assert reading.quarantine_detail == "RuntimeError: reader bug"
    assert reading.from_address == "noreply@certificado.lleida.net"


def test_truncated_messages_never_raise() -> None:
    raw = evidence_email(CertificateFields(outcome=Outcome.FAILED), packaging=Packaging.EMBEDDED)

    readings = [read(raw[:length]) for length in range(0, len(raw), max(1, len(raw) // 40))]

    assert all(isinstance(reading, MessageReading) for reading in readings)
