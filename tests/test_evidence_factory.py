"""The fixture factory: deterministic output, and PDFs whose text pypdf reads back intact."""

import io
from collections.abc import Callable
from email import message_from_bytes

import pytest
from pypdf import PdfReader

from tests.evidence_factory import (
    FORWARDER,
    CertificateFields,
    Charset,
    FilenameStyle,
    Language,
    Outcome,
    Packaging,
    TimeStyle,
    TransferEncoding,
    certificate_pdf,
    evidence_email,
    invoice_email,
    printed_time,
    rejection_email,
    unrelated_email,
    wrapper_pdf_with_embedded,
)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.parametrize(
    "build",
    [
        lambda: certificate_pdf(CertificateFields()),
        lambda: wrapper_pdf_with_embedded(certificate_pdf(CertificateFields()), "Mail_1.pdf"),
        lambda: evidence_email(packaging=Packaging.EMBEDDED, forwarded_by=FORWARDER),
        lambda: evidence_email(filename_style=FilenameStyle.RFC2231, charset=Charset.ISO_8859_1),
        lambda: rejection_email(html=True),
        invoice_email,
        unrelated_email,
    ],
)
def test_output_deterministic(build: Callable[[], bytes]) -> None:
    assert build() == build()


def test_different_inputs_differ() -> None:
    first = evidence_email(CertificateFields(certificate_id="LLD-1"))
    second = evidence_email(CertificateFields(certificate_id="LLD-2"))

    assert first != second


def test_certificate_accents_extracted() -> None:
    text = pdf_text(certificate_pdf(CertificateFields()))

    assert "Fecha y hora de envío" in text
    assert "Asunción Peñaloza" in text
    assert "Certificado de comunicación electrónica / Email certificado" in text
    assert "Anexo técnico del envío" in text


def test_catalan_certificate_text() -> None:
    text = pdf_text(certificate_pdf(CertificateFields(language=Language.CATALAN)))

    assert "Data i hora d'enviament" in text
    assert "Annex tècnic de l'enviament" in text


def test_failed_delivery_field_holds_time_and_error() -> None:
    fields = CertificateFields(outcome=Outcome.FAILED)

    text = pdf_text(certificate_pdf(fields))

    assert f"{printed_time(fields.delivered_at, fields)} - {fields.smtp_reply}" in text
    assert f"S: {fields.smtp_reply}" in text


def test_wrapper_embeds_certificate() -> None:
    inner = certificate_pdf(CertificateFields())

    reader = PdfReader(io.BytesIO(wrapper_pdf_with_embedded(inner, "Mail_LLD-1.pdf")))

    assert reader.attachments == {"Mail_LLD-1.pdf": [inner]}


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (TimeStyle.NUMERIC, "02/03/2026 15:05:00"),
        (TimeStyle.NUMERIC_OFFSET, "02/03/2026 15:05:00 +01:00"),
        (TimeStyle.NUMERIC_ZONE, "02/03/2026 15:05:00 CET"),
        (TimeStyle.ISO, "2026-03-02T15:05:00+01:00"),
        (TimeStyle.WORDS, "2 de marzo de 2026, 15:05:00"),
    ],
)
def test_printed_time_styles(style: TimeStyle, expected: str) -> None:
    fields = CertificateFields(time_style=style)

    assert printed_time(fields.sent_at, fields) == expected


def test_printed_time_catalan_elision() -> None:
    fields = CertificateFields(language=Language.CATALAN, time_style=TimeStyle.WORDS)
    moment = fields.sent_at.replace(month=10)

    assert printed_time(moment, fields) == "2 d'octubre de 2026, 16:05:00"


def test_zone_without_letters_printed_as_offset() -> None:
    fields = CertificateFields(time_zone="America/Bogota", time_style=TimeStyle.NUMERIC_ZONE)

    assert printed_time(fields.sent_at, fields) == "02/03/2026 09:05:00 GMT-5"


def test_evidence_email_headers() -> None:
    message = message_from_bytes(evidence_email())

    assert message["From"] == '"Lleida.net" <noreply@certificado.lleida.net>'
    assert message["To"] == "Evidencias TDP2 <evidencias-tdp2@constructora.example>"
    assert message["Message-ID"].startswith("<")
    assert message["DKIM-Signature"] is None
    assert message.get_content_type() == "multipart/mixed"


@pytest.mark.parametrize("encoding", list(TransferEncoding))
def test_body_transfer_encoding_declared(encoding: TransferEncoding) -> None:
    message = message_from_bytes(rejection_email(transfer_encoding=encoding))

    assert message["Content-Transfer-Encoding"] == encoding.value


def test_rejection_email_has_no_pdf() -> None:
    message = message_from_bytes(rejection_email())

    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"


def test_forwarded_evidence_is_rfc822_part() -> None:
    message = message_from_bytes(evidence_email(forwarded_by=FORWARDER))

    content_types = [part.get_content_type() for part in message.walk()]

    assert "message/rfc822" in content_types
    assert content_types.count("application/pdf") == 1
