"""Reading certificate PDFs: plain, embedded, broken, encrypted, or not a certificate."""

import io
from functools import partial

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from monitor.certificate_pdf import (
    MAX_EMBEDDING_DEPTH,
    CertificatePdfReading,
    read_certificate_pdf,
)
from monitor.certificate_text import MIN_CERTIFICATE_LABELS, count_certificate_labels
from monitor.provider import rules_for
from tests.evidence_factory import (
    CertificateFields,
    PdfFile,
    certificate_pdf,
    corrupt_pdf,
    lleida_profile,
    plain_pdf,
    wrapper_pdf_with_embedded,
)

CERTIFICATE = certificate_pdf(CertificateFields())
STATEMENT = plain_pdf(["Estado de cuenta", "Saldo pendiente: 12.500.000 COP"])


def read(data: bytes) -> CertificatePdfReading:
    count = partial(count_certificate_labels, rules=rules_for(lleida_profile()))
    return read_certificate_pdf(data, count, MIN_CERTIFICATE_LABELS)


def encrypted(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="propietario", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def image_only_pdf() -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.rect(50, 700, 200, 50, fill=1)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def nested(data: bytes, levels: int) -> bytes:
    for level in range(levels):
        data = wrapper_pdf_with_embedded(data, f"Nivel_{level}.pdf")
    return data


def test_certificate_text_read() -> None:
    reading = read(CERTIFICATE)

    assert reading.error is None
    assert reading.certificate is not None
    assert reading.certificate.embedded_name is None
    assert "Asunción Peñaloza" in reading.certificate.text
    assert "Anexo técnico del envío" in reading.certificate.text


def test_embedded_certificate_found() -> None:
    wrapper = wrapper_pdf_with_embedded(CERTIFICATE, "Mail_LLD-20260302-000123.pdf")

    reading = read(wrapper)

    assert reading.error is None
    assert reading.certificate is not None
    assert reading.certificate.embedded_name == "Mail_LLD-20260302-000123.pdf"
    assert len(reading.documents) == 2


def test_certificate_chosen_among_embedded_files() -> None:
    extras = [PdfFile("Estado_de_cuenta.pdf", STATEMENT)]
    wrapper = wrapper_pdf_with_embedded(CERTIFICATE, "Mail_1.pdf", extra_files=extras)

    reading = read(wrapper)

    assert reading.certificate is not None
    assert reading.certificate.embedded_name == "Mail_1.pdf"
    assert len(reading.documents) == 3


def test_embedded_at_depth_limit_found() -> None:
    reading = read(nested(CERTIFICATE, MAX_EMBEDDING_DEPTH))

    assert reading.certificate is not None
    assert reading.certificate.embedded_name == "Nivel_0.pdf"


def test_embedded_below_depth_limit_ignored() -> None:
    reading = read(nested(CERTIFICATE, MAX_EMBEDDING_DEPTH + 1))

    assert reading.certificate is None
    assert reading.error is None


def test_other_pdf_is_not_certificate() -> None:
    reading = read(STATEMENT)

    assert reading.certificate is None
    assert reading.error is None
    assert reading.documents[0].label_count < MIN_CERTIFICATE_LABELS


@pytest.mark.parametrize(
    "data",
    [corrupt_pdf(), b"%PDF-1.7\n" + bytes(range(256)) * 4, b"%PDF-1.4\n%%EOF\n", b""],
)
def test_corrupt_pdf_gives_reason(data: bytes) -> None:
    reading = read(data)

    assert reading.certificate is None
    assert reading.error is not None


def test_corrupt_pdf_reason_names_pypdf_error() -> None:
    reading = read(corrupt_pdf())

    assert reading.error is not None
    assert reading.error.startswith("PdfStreamError: ")


def test_image_only_pdf_gives_reason() -> None:
    reading = read(image_only_pdf())

    assert reading.certificate is None
    assert reading.error == "no text could be extracted from the PDF (an image-only PDF?)"


def test_encrypted_with_empty_password_read() -> None:
    reading = read(encrypted(CERTIFICATE, user_password=""))

    assert reading.certificate is not None


def test_encrypted_with_password_gives_reason() -> None:
    reading = read(encrypted(CERTIFICATE, user_password="secreto"))

    assert reading.certificate is None
    assert reading.error == "the PDF is encrypted with a password"


def test_broken_embedded_file_beside_certificate_ignored() -> None:
    extras = [PdfFile("roto.pdf", corrupt_pdf())]
    wrapper = wrapper_pdf_with_embedded(CERTIFICATE, "Mail_1.pdf", extra_files=extras)

    reading = read(wrapper)

    assert reading.certificate is not None
    assert reading.error is None


def test_broken_embedded_file_alone_gives_reason() -> None:
    wrapper = wrapper_pdf_with_embedded(corrupt_pdf(), "Mail_1.pdf")

    reading = read(wrapper)

    assert reading.certificate is None
    assert reading.error is not None
    assert reading.error.startswith("embedded file 'Mail_1.pdf': ")


def test_embedded_non_pdf_skipped() -> None:
    extras = [PdfFile("notas.txt", b"Notas del envio")]
    wrapper = wrapper_pdf_with_embedded(CERTIFICATE, "Mail_1.pdf", extra_files=extras)

    reading = read(wrapper)

    assert reading.certificate is not None
    assert len(reading.documents) == 2
