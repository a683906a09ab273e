"""Parsing raw messages: decoded headers, text bodies, attachments and forwarded messages."""

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from monitor.mime import (
    MAX_FORWARD_DEPTH,
    MalformedMessageError,
    decode_bytes,
    html_to_text,
    parse_message,
)
from tests.evidence_factory import (
    FORWARDER,
    CertificateFields,
    Charset,
    FilenameStyle,
    Packaging,
    TransferEncoding,
    attachment_filename,
    evidence_email,
    rejection_email,
)

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"
PDF_BASE64 = base64.b64encode(PDF_BYTES)


def message(headers: bytes, body: bytes = b"Hola\r\n") -> bytes:
    return b"From: Remitente <remitente@correo.example>\r\n" + headers + b"\r\n" + body


def multipart(*parts: bytes, subtype: bytes = b"mixed") -> bytes:
    body = b"".join(b"--XYZ\r\n" + part + b"\r\n" for part in parts) + b"--XYZ--\r\n"
    headers = b"MIME-Version: 1.0\r\nContent-Type: multipart/" + subtype + b'; boundary="XYZ"\r\n'
    return message(headers, body)


def pdf_part(headers: bytes) -> bytes:
    return headers + b"Content-Transfer-Encoding: base64\r\n\r\n" + PDF_BASE64 + b"\r\n"


def only_attachment(raw: bytes) -> tuple[str | None, str, bytes]:
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 1
    attachment = parsed.attachments[0]
    return attachment.filename, attachment.content_type, attachment.data


def test_subject_rfc2047_decoded() -> None:
    raw = message(b"Subject: =?utf-8?b?Q29ycmVvIGNlcnRpZmljYWRvOiBFbnbDrW8=?=\r\n")

    assert parse_message(raw).subject == "Correo certificado: Envío"


def test_subject_mixed_words_and_folding() -> None:
    raw = message(
        b"Subject: RV: =?iso-8859-1?q?Cuota_de_Asunci=F3n?=\r\n =?utf-8?q?_Pe=C3=B1aloza?=\r\n"
    )

    assert parse_message(raw).subject == "RV: Cuota de Asunción Peñaloza"


def test_subject_raw_utf8_bytes() -> None:
    raw = message("Subject: Envío a Asunción\r\n".encode())

    assert parse_message(raw).subject == "Envío a Asunción"


def test_subject_raw_windows_1252_bytes() -> None:
    raw = message("Subject: Envío “final”\r\n".encode("cp1252"))

    assert parse_message(raw).subject == "Envío “final”"


def test_subject_unknown_charset_kept_readable() -> None:
    raw = message(b"Subject: =?x-unknown-charset?q?Env=C3=ADo?=\r\n")

    assert parse_message(raw).subject == "Envío"


def test_subject_malformed_encoded_word_kept() -> None:
    raw = message(b"Subject: =?utf-8?b?not base64!?=\r\n")

    assert parse_message(raw).subject == "=?utf-8?b?not base64!?="


def test_missing_subject_is_none() -> None:
    assert parse_message(message(b"")).subject is None


def test_from_address_lowercased() -> None:
    raw = b"From: =?utf-8?q?Pe=C3=B1aloza=2C_Asunci=C3=B3n?= <Asuncion@Correo.Example>\r\n\r\nx"

    parsed = parse_message(raw)

    assert parsed.from_addresses == ("asuncion@correo.example",)
    assert parsed.from_address == "asuncion@correo.example"


def test_to_addresses_listed() -> None:
    raw = message(b"To: A <a@correo.example>, b@correo.example\r\n")

    assert parse_message(raw).to_addresses == ("a@correo.example", "b@correo.example")


def test_date_in_utc() -> None:
    raw = message(b"Date: Mon, 02 Mar 2026 15:07:00 +0100\r\n")

    assert parse_message(raw).date == datetime(2026, 3, 2, 14, 7, tzinfo=UTC)


def test_date_without_zone_is_utc() -> None:
    raw = message(b"Date: Mon, 02 Mar 2026 15:07:00 -0000\r\n")

    assert parse_message(raw).date == datetime(2026, 3, 2, 15, 7, tzinfo=UTC)


def test_date_invalid_is_none() -> None:
    raw = message(b"Date: el lunes por la tarde\r\n")

    assert parse_message(raw).date is None


def test_message_ids_without_brackets() -> None:
    raw = message(
        b"Message-ID: <abc.1@certificado.example>\r\n"
        b"In-Reply-To: <orig.1@paco.example>\r\n"
        b"References: <first@paco.example>\r\n <orig.1@paco.example>\r\n"
    )

    parsed = parse_message(raw)

    assert parsed.message_id == "abc.1@certificado.example"
    assert parsed.in_reply_to == "orig.1@paco.example"
    assert parsed.references == ("first@paco.example", "orig.1@paco.example")


def test_message_id_without_brackets_kept() -> None:
    raw = message(b"Message-ID: abc.1@certificado.example\r\n")

    assert parse_message(raw).message_id == "abc.1@certificado.example"


@pytest.mark.parametrize("charset", list(Charset))
@pytest.mark.parametrize("encoding", list(TransferEncoding))
def test_body_charsets_and_encodings(charset: Charset, encoding: TransferEncoding) -> None:
    raw = rejection_email(charset=charset, transfer_encoding=encoding)

    body = parse_message(raw).body_text

    assert "Su correo no ha sido certificado." in body
    assert "Asunción Peñaloza" in body
    assert "Saldo insuficiente para certificar el envío." in body


def test_body_windows_1252_quotes() -> None:
    raw = evidence_email(charset=Charset.WINDOWS_1252, transfer_encoding=TransferEncoding.EIGHT_BIT)

    assert "“Estado de cuenta negocio 1042 - Torres del Parque”" in parse_message(raw).body_text


def test_body_declared_latin1_holding_windows_1252() -> None:
    body = "Envío “final” de 20 €".encode("cp1252")
    raw = message(b'Content-Type: text/plain; charset="iso-8859-1"\r\n', body)

    assert parse_message(raw).body_text == "Envío “final” de 20 €"


def test_body_unknown_charset_falls_back() -> None:
    raw = message(b"Content-Type: text/plain; charset=x-klingon\r\n", "Envío".encode())

    assert parse_message(raw).body_text == "Envío"


def test_body_empty_charset_falls_back() -> None:
    raw = message(b'Content-Type: text/plain; charset=""\r\n', "Envío".encode("cp1252"))

    assert parse_message(raw).body_text == "Envío"


def test_body_wrong_charset_falls_back() -> None:
    raw = message(b"Content-Type: text/plain; charset=utf-8\r\n", "Envío".encode("cp1252"))

    assert parse_message(raw).body_text == "Envío"


def test_decode_bytes_never_fails() -> None:
    text = decode_bytes(b"\x81\x8d\xff", "utf-8")

    assert isinstance(text, str)


def test_alternative_prefers_plain_text() -> None:
    alternative = (
        b'Content-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
        b"--ALT\r\nContent-Type: text/plain\r\n\r\nTexto plano\r\n"
        b"--ALT\r\nContent-Type: text/html\r\n\r\n<p>Texto HTML</p>\r\n"
        b"--ALT--\r\n"
    )

    parsed = parse_message(multipart(alternative))

    assert parsed.text_bodies == ("Texto plano",)


def test_html_only_body_as_text() -> None:
    raw = rejection_email(html=True)

    body = parse_message(raw).body_text

    assert "Su correo no ha sido certificado." in body
    assert "Destinatario: Asunción Peñaloza <asuncion.penaloza@correo.example>" in body
    assert "margin" not in body


def test_html_to_text_lines() -> None:
    html = "<table><tr><td>Motivo:</td><td>Saldo&nbsp;insuficiente</td></tr></table>"

    assert html_to_text(html) == "Motivo:\nSaldo insuficiente"


def test_pdf_attachment() -> None:
    part = pdf_part(
        b'Content-Type: application/pdf; name="Mail_1.pdf"\r\n'
        b'Content-Disposition: attachment; filename="Mail_1.pdf"\r\n'
    )

    name, content_type, data = only_attachment(multipart(part))

    assert name == "Mail_1.pdf"
    assert content_type == "application/pdf"
    assert data == PDF_BYTES


def test_attachment_is_pdf_by_type() -> None:
    part = pdf_part(b"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n")

    assert parse_message(multipart(part)).attachments[0].is_pdf


def test_octet_stream_pdf_by_name() -> None:
    raw = evidence_email(packaging=Packaging.OCTET_STREAM)

    attachment = parse_message(raw).attachments[0]

    assert attachment.content_type == "application/octet-stream"
    assert attachment.is_pdf


def test_unnamed_octet_stream_pdf_by_magic() -> None:
    raw = evidence_email(packaging=Packaging.UNNAMED_OCTET_STREAM)

    attachment = parse_message(raw).attachments[0]

    assert attachment.filename is None
    assert attachment.is_pdf


def test_text_attachment_is_not_pdf() -> None:
    part = (
        b'Content-Type: text/plain; name="notas.txt"\r\n'
        b'Content-Disposition: attachment; filename="notas.txt"\r\n\r\nNotas\r\n'
    )

    parsed = parse_message(multipart(part))

    assert parsed.text_bodies == ()
    assert not parsed.attachments[0].is_pdf


@pytest.mark.parametrize("style", [FilenameStyle.RFC2047, FilenameStyle.RFC2231])
def test_encoded_filenames(style: FilenameStyle) -> None:
    raw = evidence_email(filename_style=style)

    attachment = parse_message(raw).attachments[0]

    assert attachment.filename == attachment_filename(CertificateFields(), style)
    assert attachment.filename == "Certificado_Asunción_Peñaloza_LLD-20260302-000123.pdf"


def test_rfc2231_continuation_filename() -> None:
    part = pdf_part(
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0*=UTF-8''Certificado_Asunci%C3%B3n;\r\n"
        b" filename*1*=_Pe%C3%B1aloza.pdf\r\n"
    )

    name, _content_type, _data = only_attachment(multipart(part))

    assert name == "Certificado_Asunción_Peñaloza.pdf"


def test_rfc2231_unknown_charset_filename() -> None:
    part = pdf_part(
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=x-klingon''Mail_1.pdf\r\n"
    )

    name, _content_type, _data = only_attachment(multipart(part))

    assert name == "Mail_1.pdf"


def test_name_parameter_used_without_disposition() -> None:
    part = pdf_part(b'Content-Type: application/pdf; name="=?utf-8?q?Env=C3=ADo.pdf?="\r\n')

    name, _content_type, _data = only_attachment(multipart(part))

    assert name == "Envío.pdf"


def test_several_pdfs_in_order() -> None:
    fields = [CertificateFields(certificate_id=f"LLD-{number}") for number in (1, 2, 3)]

    parsed = parse_message(evidence_email(fields))

    assert [a.filename for a in parsed.attachments] == [
        "Mail_LLD-1.pdf",
        "Mail_LLD-2.pdf",
        "Mail_LLD-3.pdf",
    ]


def test_forwarded_message_parsed() -> None:
    raw = evidence_email(forwarded_by=FORWARDER)

    parsed = parse_message(raw)

    assert parsed.from_address == "recepcion@constructora.example"
    assert parsed.attachments == ()
    assert len(parsed.forwarded) == 1
    assert parsed.forwarded[0].from_address == "noreply@certificado.lleida.net"
    assert parsed.forwarded[0].subject == (
        "Correo certificado: Estado de cuenta negocio 1042 - Torres del Parque"
    )


def test_forwarded_attachments_listed_by_outer() -> None:
    parsed = parse_message(evidence_email(forwarded_by=FORWARDER))

    assert [a.filename for a in parsed.all_attachments()] == ["Mail_LLD-20260302-000123.pdf"]


def test_forwarded_base64_message_parsed() -> None:
    inner = b"From: noreply@certificado.lleida.net\r\nSubject: Interior\r\n\r\nCuerpo\r\n"
    part = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(inner)
        + b"\r\n"
    )

    parsed = parse_message(multipart(part))

    assert parsed.forwarded[0].subject == "Interior"
    assert parsed.forwarded[0].body_text == "Cuerpo\n"


def test_eml_attachment_parsed_as_forward() -> None:
    inner = b"From: noreply@certificado.lleida.net\r\nSubject: Interior\r\n\r\nCuerpo\r\n"
    part = (
        b'Content-Type: application/octet-stream; name="evidencia.eml"\r\n'
        b'Content-Disposition: attachment; filename="evidencia.eml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(inner) + b"\r\n"
    )

    parsed = parse_message(multipart(part))

    assert parsed.attachments == ()
    assert parsed.forwarded[0].subject == "Interior"


def test_forward_depth_limited() -> None:
    raw = b"From: noreply@certificado.lleida.net\r\nSubject: Fondo\r\n\r\nCuerpo\r\n"
    for _level in range(MAX_FORWARD_DEPTH + 3):
        raw = message(b"Content-Type: message/rfc822\r\n", raw)

    parsed = parse_message(raw)

    assert len(list(parsed.all_messages())) == MAX_FORWARD_DEPTH + 1
    assert "ForwardedTooDeep" in list(parsed.all_messages())[-1].defects


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"just some text without headers"])
def test_not_a_message_rejected(raw: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        parse_message(raw)


def test_nesting_too_deep_rejected() -> None:
    body = b"x"
    for level in range(3000):
        boundary = b"b%d" % level
        body = (
            b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--"
            + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n"
        )  # fmt: skip

    with pytest.raises(MalformedMessageError, match="nested too deeply"):
        parse_message(b"From: a@correo.example\r\n" + body)


def test_attachment_sha256() -> None:
    part = pdf_part(b"Content-Type: application/pdf\r\n")

    parsed = parse_message(multipart(part))

    assert parsed.attachments[0].sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
