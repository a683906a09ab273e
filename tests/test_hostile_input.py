"""Malformed and hostile input: each case is read or quarantined within its limits, never a crash.

Every input is small and synthetic. A case that must be read asserts what was read. A case
that must be quarantined asserts the reason, and for a ceiling, the limit named.
"""

import base64
import io
import re
import zlib
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader, PdfWriter

from config.provider_settings import ReadingLimits
from monitor.mime import parse_header_date, parse_message
from monitor.models import MessageClass
from monitor.reading import read_message
from monitor.reading_results import MessageReading, QuarantineCode
from tests.evidence_factory import (
    PROVIDER_FROM,
    CertificateFields,
    PdfFile,
    certificate_pdf,
    evidence_email,
    lleida_profile,
)

CRLF = b"\r\n"


def read(raw: bytes, limits: ReadingLimits | None = None) -> MessageReading:
    return read_message(raw, lleida_profile(), limits)


def provider_message(headers: list[bytes], body: bytes) -> bytes:
    base = [b"From: " + PROVIDER_FROM.encode(), b"To: evidencias@constructora.example"]
    return CRLF.join([*base, *headers]) + CRLF + CRLF + body


def carrying(pdf: bytes) -> bytes:
    """An evidence email whose only PDF is ``pdf``, named like a certificate."""
    return evidence_email([], extra_pdfs=[PdfFile("Mail_LLD-20260302-000123.pdf", pdf)])


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF with ``objects`` numbered from 1 (the catalog first) and a correct xref table."""
    out = b"%PDF-1.7\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


PAGE_TREE = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"]


def one_page_pdf(page: bytes, *more: bytes) -> bytes:
    return raw_pdf([*PAGE_TREE, page, *more])


# MIME and headers


def test_broken_base64_padding_read() -> None:
    message = evidence_email()
    start = message.index(b"Content-Transfer-Encoding: base64", message.index(b"application/pdf"))
    end = message.index(b"--=_acuse", start)
    part = message[start:end].rstrip(CRLF).rstrip(b"=")
    broken = message[:start] + part + CRLF + message[end:]

    reading = read(broken)

    assert reading.classification in (MessageClass.EVIDENCE, MessageClass.QUARANTINED)
    assert reading.quarantine_code in (None, QuarantineCode.UNREADABLE_PDF)


def test_missing_boundary_quarantined() -> None:
    raw = provider_message(
        [b"Subject: Correo certificado: Estado de cuenta", b"Content-Type: multipart/mixed"],
        b"--x\r\nContent-Type: text/plain\r\n\r\nhola\r\n--x--\r\n",
    )

    reading = read(raw)

    assert reading.classification is MessageClass.QUARANTINED
    assert reading.quarantine_code is QuarantineCode.NO_CERTIFICATE


@pytest.mark.parametrize("charset", [b"x-desconocido", b'""', b"utf-99"])
def test_unknown_or_empty_charset_read(charset: bytes) -> None:
    raw = provider_message(
        [
            b"Subject: Correo no certificado: Estado de cuenta",
            b"Content-Type: text/plain; charset=" + charset,
        ],
        "Su correo no ha sido certificado. Motivo: saldo insuficiente.\r\n".encode("cp1252"),
    )

    reading = read(raw)

    assert reading.classification is MessageClass.EVIDENCE
    assert reading.evidence[0].reason is not None


def test_raw_8bit_header_read() -> None:
    raw = provider_message(
        ["Subject: Correo no certificado: Notificación de cobro".encode()],
        b"Su correo no ha sido certificado.\r\n",
    )

    reading = read(raw)

    assert reading.subject == "Correo no certificado: Notificación de cobro"


def test_rfc2231_continuation_without_index_read() -> None:
    pdf = certificate_pdf(CertificateFields())
    body = (
        b"--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename*0="Mail_"; filename*="LLD-1.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(pdf).replace(b"\n", CRLF)
        + b"--b--\r\n"
    )
    raw = provider_message(
        [b"Subject: Correo certificado: x", b'Content-Type: multipart/mixed; boundary="b"'], body
    )

    reading = read(raw)

    assert reading.classification is MessageClass.EVIDENCE
    assert reading.evidence[0].certificate_id == "LLD-20260302-000123"


def test_encoded_word_split_inside_character_read() -> None:
    # "ó" is C3 B3 in UTF-8; the two bytes sit in two encoded words.
    raw = provider_message(
        [b"Subject: =?UTF-8?Q?Notificaci=C3?= =?UTF-8?Q?=B3n_de_cobro?="],
        b"Su correo no ha sido certificado.\r\n",
    )

    reading = read(raw)

    assert reading.subject == "Notificación de cobro"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("lun, 2 mar 2026 15:05:00 -0500", datetime(2026, 3, 2, 20, 5, tzinfo=UTC)),
        ("Mon, 2 Mar 2026 15:05:00 COT", datetime(2026, 3, 2, 20, 5, tzinfo=UTC)),
        ("mié, 2 dic 2026 10:15:00 CET", datetime(2026, 12, 2, 9, 15, tzinfo=UTC)),
        ("2 de diciembre de 2026 10:15:00", datetime(2026, 12, 2, 10, 15, tzinfo=UTC)),
        ("Mon, 2 Mar 2026 15:05:00", datetime(2026, 3, 2, 15, 5, tzinfo=UTC)),
        ("Mon, 2 Mar 2026 15:05:00 EST", datetime(2026, 3, 2, 20, 5, tzinfo=UTC)),
    ],
)
def test_unusual_date_headers_read(header: str, expected: datetime) -> None:
    assert parse_header_date(header) == expected


def test_unreadable_date_is_none() -> None:
    assert parse_header_date("el martes pasado") is None


def test_forwarded_part_with_8bit_body_read() -> None:
    # Found by test_fuzz: a message/rfc822 part of raw 8-bit bytes inside nested multiparts.
    nested = b'\r\n--b\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
    raw = provider_message(
        [b"Subject: Correo certificado: x", b'Content-Type: multipart/mixed; boundary="b"'],
        b'--b\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
        + nested
        + b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\xc2\x80\r\n--b--\r\n\r\n--b--\r\n",
    )

    parsed = parse_message(raw)
    reading = read(raw)

    assert parsed.subject == "Correo certificado: x"
    assert reading.quarantine_code is QuarantineCode.NO_CERTIFICATE


def test_content_type_of_20_kb_read() -> None:
    padding = b"a" * 20_000
    raw = provider_message(
        [
            b"Subject: Correo no certificado: Estado de cuenta",
            b'Content-Type: text/plain; charset="utf-8"; x-relleno="' + padding + b'"',
        ],
        b"Su correo no ha sido certificado.\r\n",
    )

    reading = read(raw)

    assert reading.classification is MessageClass.EVIDENCE


def test_header_past_limit_quarantined() -> None:
    raw = provider_message([b"X-Relleno: " + b"a" * 5000], b"hola\r\n")

    reading = read(raw, ReadingLimits(max_header_bytes=4096))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("max_header_bytes")


def test_message_past_size_limit_quarantined() -> None:
    reading = read(evidence_email(), ReadingLimits(max_message_bytes=4096))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("max_message_bytes")


def test_too_many_parts_quarantined() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(50))
    raw = provider_message(
        [b"Subject: x", b'Content-Type: multipart/mixed; boundary="b"'], parts + b"--b--\r\n"
    )

    reading = read(raw, ReadingLimits(max_mime_parts=20))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("max_mime_parts")


def test_deep_nesting_quarantined() -> None:
    body = b"hola\r\n"
    for depth in range(30):
        boundary = b"b%d" % depth
        body = (
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + CRLF
            + CRLF
            + b"--"
            + boundary
            + CRLF
            + body
            + CRLF
            + b"--"
            + boundary
            + b"--"
            + CRLF
        )
    raw = CRLF.join([b"From: " + PROVIDER_FROM.encode(), b"Subject: x"]) + CRLF + body

    reading = read(raw, ReadingLimits(max_nesting_depth=10))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert reading.quarantine_detail is not None
    assert reading.quarantine_detail.startswith("max_nesting_depth")


def test_structure_checked_before_decoding() -> None:
    raw = evidence_email()

    with pytest.raises(Exception, match="max_mime_parts"):
        parse_message(raw, ReadingLimits(max_mime_parts=1))


# PDF


def test_damaged_xref_table_read() -> None:
    pdf = certificate_pdf(CertificateFields())
    start = pdf.rindex(b"\nxref\n")
    end = pdf.index(b"trailer", start)
    wrong = re.sub(rb"\d{10} 00000 n", b"0000000017 00000 n", pdf[start:end])

    reading = read(carrying(pdf[:start] + wrong + pdf[end:]))

    assert reading.classification is MessageClass.EVIDENCE
    assert reading.evidence[0].certificate_id == "LLD-20260302-000123"


def test_truncated_pdf_quarantined() -> None:
    pdf = certificate_pdf(CertificateFields())

    reading = read(carrying(pdf.replace(b"startxref", b"startxrex")))

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF


def test_encrypted_pdf_quarantined() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(certificate_pdf(CertificateFields()))))
    writer.encrypt("secreto", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)

    reading = read(carrying(buffer.getvalue()))

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF
    assert "encrypted" in (reading.quarantine_detail or "")


def test_image_only_pdf_quarantined_for_review() -> None:
    image = (
        b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length 4 >>\nstream\n\x00\xff\x00\xff\nendstream"
    )
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << /Im1 5 0 R >> >> >>"
    )
    drawing = b"<< /Length 29 >>\nstream\nq 100 0 0 100 0 0 cm /Im1 Do Q\nendstream"

    reading = read(carrying(one_page_pdf(page, drawing, image)))

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF
    assert "no text could be extracted" in (reading.quarantine_detail or "")


def test_decompression_bomb_quarantined() -> None:
    bomb = zlib.compress(b"0" * 20_000_000)
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(bomb), bomb)

    reading = read(
        carrying(one_page_pdf(page, stream)), ReadingLimits(max_decompressed_bytes=2**20)
    )

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (reading.quarantine_detail or "").startswith("max_decompressed_bytes")


def test_self_referencing_page_tree_quarantined() -> None:
    looping = raw_pdf([PAGE_TREE[0], b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"])

    reading = read(carrying(looping))

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF


def test_page_that_is_its_own_content_quarantined() -> None:
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R /Resources 3 0 R >>"
    )

    reading = read(carrying(one_page_pdf(page)))

    assert reading.quarantine_code is QuarantineCode.UNREADABLE_PDF


def test_pdf_past_page_limit_quarantined() -> None:
    reading = read(evidence_email(), ReadingLimits(max_pdf_pages=1))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (reading.quarantine_detail or "").startswith("max_pdf_pages")


def test_pdf_past_size_limit_quarantined() -> None:
    reading = read(evidence_email(), ReadingLimits(max_pdf_bytes=1024))

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (reading.quarantine_detail or "").startswith("max_pdf_bytes")
