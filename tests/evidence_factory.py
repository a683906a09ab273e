"""Invented Lleida.net-style evidence: certificate PDFs and the messages that carry them.

Unit tests, integration tests, the demo samples and the benchmarks build their evidence here.
Every value is invented (``.example`` domains, made-up people and identifiers). The output is
a function of the inputs alone: dates are fixed, MIME boundaries and Message-IDs are derived
from the content, and reportlab runs in invariant mode, so samples regenerate byte for byte.

The layout imitates what Lleida.net's help desk describes: a page titled "Certificado de
comunicación electrónica / Email certificado" with labelled fields, then a page "Anexo técnico
del envío" with the SMTP dialogue. For a failed delivery, the delivery field contains the error
time and a summary of the SMTP error.
"""

import base64
import hashlib
import io
import quopri
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from enum import StrEnum
from functools import cache
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dkim
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from config.provider_settings import ProviderProfile
from config.settings import settings_from_mapping
from tests.trust_pki import DKIM_DOMAIN, DKIM_SELECTOR, DkimKey, KeyPair, invented_pki

PROVIDER_FROM = "Lleida.net <noreply@certificado.lleida.net>"
EVIDENCE_MAILBOX = "Evidencias TDP2 <evidencias-tdp2@constructora.example>"
PACO_SENDER = "Cartera Torres del Parque <cartera@constructora.example>"
FORWARDER = "Recepción Constructora <recepcion@constructora.example>"
DEFAULT_RECIPIENT = "Asunción Peñaloza <asuncion.penaloza@correo.example>"
DEFAULT_SUBJECT = "Estado de cuenta negocio 1042 - Torres del Parque"
DEFAULT_MESSAGE_ID = "20260302140500.1042@paco.constructora.example"
DEFAULT_CERTIFICATE_ID = "LLD-20260302-000123"
SENT_AT = datetime(2026, 3, 2, 14, 5, 0, tzinfo=UTC)
DELIVERY_DELAY = timedelta(seconds=7)
EVIDENCE_DELAY = timedelta(minutes=2)

_FONT = "Helvetica"
_BOLD = "Helvetica-Bold"
_PAGE_WIDTH: float = A4[0]
_PAGE_HEIGHT: float = A4[1]
_MARGIN = 50.0
_VALUE_X = 215.0
_CRLF = b"\r\n"


@cache
def lleida_profile() -> ProviderProfile:
    """Return the built-in Lleida.net provider profile, as a configuration without overrides."""
    return settings_from_mapping({}, Path.cwd()).providers["lleida"]


class Language(StrEnum):
    """Language of a certificate or message."""

    SPANISH = "es"
    CATALAN = "ca"
    ENGLISH = "en"


class Outcome(StrEnum):
    """What the certificate records about the delivery."""

    DELIVERED = "delivered"
    FAILED = "failed"


class TimeStyle(StrEnum):
    """How the certificate prints its times (examples for 15:05 in Madrid in winter)."""

    NUMERIC = "numeric"  # 02/03/2026 15:05:00, no zone
    NUMERIC_OFFSET = "offset"  # 02/03/2026 15:05:00 +01:00
    NUMERIC_ZONE = "zone"  # 02/03/2026 15:05:00 CET (GMT-5 where the zone has no letters)
    ISO = "iso"  # 2026-03-02T15:05:00+01:00
    WORDS = "words"  # 2 de marzo de 2026, 15:05:00, no zone


class Layout(StrEnum):
    """How a field is drawn; pypdf extracts the two differently."""

    STACKED = "stacked"  # label and value drawn apart: the value comes out on the next line
    INLINE = "inline"  # "Label: value" drawn as one string: it comes out on one line


class Packaging(StrEnum):
    """How the evidence message carries each certificate PDF."""

    ATTACHED = "attached"  # application/pdf
    OCTET_STREAM = "octet-stream"  # application/octet-stream with a .pdf name
    UNNAMED_OCTET_STREAM = "unnamed-octet-stream"  # no name: only the %PDF- bytes tell
    EMBEDDED = "embedded"  # inside a wrapper PDF, as the embedded file Mail_<id>.pdf


class FilenameStyle(StrEnum):
    """How a non-ASCII attachment name is written in the MIME headers."""

    PLAIN = "plain"  # Mail_<id>.pdf, ASCII
    RFC2047 = "rfc2047"  # filename="=?UTF-8?B?...?="
    RFC2231 = "rfc2231"  # filename*=UTF-8''...


class Charset(StrEnum):
    """Charset of a text body."""

    UTF8 = "utf-8"
    ISO_8859_1 = "iso-8859-1"
    WINDOWS_1252 = "windows-1252"


class TransferEncoding(StrEnum):
    """Content-Transfer-Encoding of a text body."""

    QUOTED_PRINTABLE = "quoted-printable"
    EIGHT_BIT = "8bit"
    BASE64 = "base64"


class RejectionReason(StrEnum):
    """The reason a service notice gives for not certifying a send."""

    NO_CREDIT = "no-credit"
    SENDER_NOT_AUTHORISED = "sender-not-authorised"
    TOO_LARGE = "too-large"


@dataclass(frozen=True)
class CertificateFields:
    """The data one certificate prints; also describes the send a notice is about."""

    certificate_id: str = DEFAULT_CERTIFICATE_ID
    sender: str = PACO_SENDER
    recipient: str = DEFAULT_RECIPIENT
    subject: str = DEFAULT_SUBJECT
    message_id: str = DEFAULT_MESSAGE_ID
    sent_at: datetime = SENT_AT
    delivered_at: datetime = SENT_AT + DELIVERY_DELAY
    outcome: Outcome = Outcome.DELIVERED
    smtp_detail: str | None = None
    content_hash: str = hashlib.sha256(b"invented message 1042").hexdigest()
    language: Language = Language.SPANISH
    time_style: TimeStyle = TimeStyle.NUMERIC_ZONE
    time_zone: str = "Europe/Madrid"
    layout: Layout = Layout.STACKED
    omitted: frozenset[str] = frozenset()  # fields not printed: "recipient", "sent_at", ...

    @property
    def recipient_address(self) -> str:
        """The recipient's address, lowercased."""
        return parseaddr(self.recipient)[1].lower()

    @property
    def recipient_name(self) -> str:
        """The recipient's display name, or the address when there is none."""
        return parseaddr(self.recipient)[0] or self.recipient_address

    @property
    def smtp_reply(self) -> str:
        """The SMTP reply to RCPT TO: the given detail, or a "user unknown" rejection."""
        if self.smtp_detail is not None:
            return self.smtp_detail
        return f"550 5.1.1 <{self.recipient_address}>: Recipient address rejected: User unknown"


@dataclass(frozen=True)
class PdfFile:
    """A ready PDF to attach as it is (a corrupt one, an invoice)."""

    name: str | None
    data: bytes
    content_type: str = "application/pdf"


@dataclass(frozen=True)
class _Wording:
    title: str
    intro: str
    annex_title: str
    annex_intro: str
    labels: dict[str, str]
    delivered: str
    failed: str
    months: tuple[str, ...]
    email_subject: str
    email_body: str
    forward_prefix: str
    forward_body: str
    rejection_subject: str
    rejection_body: str
    reasons: dict[RejectionReason, str]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SPANISH = _Wording(
    title="Certificado de comunicación electrónica / Email certificado",
    intro="El prestador de servicios de confianza certifica los datos del envío siguiente.",
    annex_title="Anexo técnico del envío",
    annex_intro="Diálogo SMTP con el servidor de correo del destinatario.",
    labels={
        "certificate_id": "Identificador",
        "sender": "Remitente",
        "recipient": "Destinatario",
        "subject": "Asunto",
        "message_id": "Identificador del mensaje",
        "sent_at": "Fecha y hora de envío",
        "delivered_at": "Fecha y hora de entrega",
        "status": "Estado",
        "content_hash": "Huella digital",
        "reason": "Motivo",
    },
    delivered="Entregado",
    failed="Error en la entrega",
    months=_words(
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
    ),
    email_subject="Correo certificado: {subject}",
    email_body=(
        "Estimado cliente:\n\nLe remitimos el certificado del correo {quoted} enviado a "
        "{recipient}.\nEncontrará el certificado en PDF adjunto a este mensaje.\n\n"
        "Atentamente,\nServicio de correo certificado\n"
    ),
    forward_prefix="RV: ",
    forward_body="---------- Mensaje reenviado ----------\nSe adjunta la evidencia recibida.\n",
    rejection_subject="Correo no certificado: {subject}",
    rejection_body=(
        "Estimado cliente:\n\nSu correo no ha sido certificado.\n\n{fields}\n\n"
        "Atentamente,\nServicio de correo certificado\n"
    ),
    reasons={
        RejectionReason.NO_CREDIT: "Saldo insuficiente para certificar el envío.",
        RejectionReason.SENDER_NOT_AUTHORISED: (
            "El remitente no está autorizado a certificar con esta cuenta."
        ),
        RejectionReason.TOO_LARGE: "El mensaje supera el tamaño máximo de 20 MB.",
    },
)
_CATALAN = _Wording(
    title="Certificat de comunicació electrònica / Correu certificat",
    intro="El prestador de serveis de confiança certifica les dades de l'enviament següent.",
    annex_title="Annex tècnic de l'enviament",
    annex_intro="Diàleg SMTP amb el servidor de correu del destinatari.",
    labels={
        "certificate_id": "Identificador del certificat",
        "sender": "Remitent",
        "recipient": "Destinatari",
        "subject": "Assumpte",
        "message_id": "Identificador del missatge",
        "sent_at": "Data i hora d'enviament",
        "delivered_at": "Data i hora d'entrega",
        "status": "Estat",
        "content_hash": "Empremta digital",
        "reason": "Motiu",
    },
    delivered="Lliurat",
    failed="Error en el lliurament",
    months=_words(
        "gener febrer març abril maig juny juliol agost setembre octubre novembre desembre"
    ),
    email_subject="Correu certificat: {subject}",
    email_body=(
        "Benvolgut client,\n\nUs fem arribar el certificat del correu {quoted} enviat a "
        "{recipient}.\nTrobareu el certificat en PDF adjunt a aquest missatge.\n\n"
        "Atentament,\nServei de correu certificat\n"
    ),
    forward_prefix="RV: ",
    forward_body="---------- Missatge reenviat ----------\nS'adjunta l'evidència rebuda.\n",
    rejection_subject="Correu no certificat: {subject}",
    rejection_body=(
        "Benvolgut client,\n\nEl vostre correu no s'ha pogut certificar.\n\n{fields}\n\n"
        "Atentament,\nServei de correu certificat\n"
    ),
    reasons={
        RejectionReason.NO_CREDIT: "Saldo insuficient per certificar l'enviament.",
        RejectionReason.SENDER_NOT_AUTHORISED: (
            "El remitent no està autoritzat a certificar amb aquest compte."
        ),
        RejectionReason.TOO_LARGE: "El missatge supera la mida màxima de 20 MB.",
    },
)
_ENGLISH = _Wording(
    title="Certificate of electronic communication / Certified email",
    intro="The trust service provider certifies the data of the following sending.",
    annex_title="Technical annex of the sending",
    annex_intro="SMTP dialogue with the recipient's mail server.",
    labels={
        "certificate_id": "Certificate ID",
        "sender": "Sender",
        "recipient": "Recipient",
        "subject": "Subject",
        "message_id": "Message ID",
        "sent_at": "Sending date",
        "delivered_at": "Delivery date",
        "status": "Status",
        "content_hash": "Message hash",
        "reason": "Reason",
    },
    delivered="Delivered",
    failed="Delivery failed",
    months=_words(
        "January February March April May June July August September October November December"
    ),
    email_subject="Certified email: {subject}",
    email_body=(
        "Dear customer,\n\nPlease find the certificate of the email {quoted} sent to "
        "{recipient}.\nThe PDF certificate is attached to this message.\n\n"
        "Kind regards,\nCertified email service\n"
    ),
    forward_prefix="Fwd: ",
    forward_body="---------- Forwarded message ----------\nThe evidence received is attached.\n",
    rejection_subject="Email not certified: {subject}",
    rejection_body=(
        "Dear customer,\n\nYour email could not be certified.\n\n{fields}\n\n"
        "Kind regards,\nCertified email service\n"
    ),
    reasons={
        RejectionReason.NO_CREDIT: "Insufficient credit to certify the message.",
        RejectionReason.SENDER_NOT_AUTHORISED: (
            "The sender is not authorised to certify with this account."
        ),
        RejectionReason.TOO_LARGE: "The message exceeds the maximum size of 20 MB.",
    },
)
_WORDING = {Language.SPANISH: _SPANISH, Language.CATALAN: _CATALAN, Language.ENGLISH: _ENGLISH}


# Certificate PDF


def printed_time(moment: datetime, fields: CertificateFields) -> str:
    """Return ``moment`` as the certificate prints it, in its zone and time style."""
    local = moment.astimezone(ZoneInfo(fields.time_zone))
    numeric = local.strftime("%d/%m/%Y %H:%M:%S")
    style = fields.time_style
    if style is TimeStyle.NUMERIC:
        return numeric
    if style is TimeStyle.NUMERIC_OFFSET:
        return f"{numeric} {_offset(local)}"
    if style is TimeStyle.NUMERIC_ZONE:
        return f"{numeric} {_zone_name(local)}"
    if style is TimeStyle.ISO:
        return local.isoformat(timespec="seconds")
    return _in_words(local, _WORDING[fields.language])


def _offset(local: datetime) -> str:
    text = local.strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def _zone_name(local: datetime) -> str:
    name = local.tzname() or ""
    if name.isalpha():
        return name
    offset = local.utcoffset() or timedelta(0)
    hours = int(offset.total_seconds() // 3600)
    return f"GMT{hours:+d}"


def _in_words(local: datetime, wording: _Wording) -> str:
    month = wording.months[local.month - 1]
    clock = local.strftime("%H:%M:%S")
    if wording is _ENGLISH:
        return f"{local.day} {month} {local.year}, {clock}"
    # Catalan elides "de" before a vowel: "25 d'octubre".
    article = "d'" if wording is _CATALAN and month[0] in "ao" else "de "
    return f"{local.day} {article}{month} de {local.year}, {clock}"


def certificate_lines(fields: CertificateFields) -> list[tuple[str, str]]:
    """Return the (label, value) pairs of the certificate page, in print order."""
    wording = _WORDING[fields.language]
    labels = wording.labels
    failed = fields.outcome is Outcome.FAILED
    delivery = printed_time(fields.delivered_at, fields)
    if failed:
        delivery = f"{delivery} - {fields.smtp_reply}"
    values = {
        "certificate_id": fields.certificate_id,
        "sender": fields.sender,
        "recipient": fields.recipient,
        "subject": fields.subject,
        "message_id": f"<{fields.message_id}>",
        "sent_at": printed_time(fields.sent_at, fields),
        "delivered_at": delivery,
        "status": wording.failed if failed else wording.delivered,
        "content_hash": fields.content_hash,
    }
    return [(labels[key], value) for key, value in values.items() if key not in fields.omitted]


def smtp_dialogue(fields: CertificateFields) -> list[str]:
    """Return the invented SMTP dialogue of the technical annex."""
    domain = fields.recipient_address.rsplit("@", 1)[1]
    lines = [
        f"S: 220 mx.{domain} ESMTP",
        "C: EHLO mta.certificado.example",
        f"S: 250-mx.{domain}",
        "S: 250 8BITMIME",
        f"C: MAIL FROM:<{parseaddr(fields.sender)[1]}>",
        "S: 250 2.1.0 Ok",
        f"C: RCPT TO:<{fields.recipient_address}>",
    ]
    if fields.outcome is Outcome.FAILED:
        return [*lines, f"S: {fields.smtp_reply}", "C: QUIT", "S: 221 2.0.0 Bye"]
    queue_id = hashlib.sha256(fields.certificate_id.encode()).hexdigest()[:10].upper()
    return [
        *lines,
        "S: 250 2.1.5 Ok",
        "C: DATA",
        "S: 354 End data with <CR><LF>.<CR><LF>",
        "S: 250 2.0.0 Ok: queued as " + queue_id,
        "C: QUIT",
        "S: 221 2.0.0 Bye",
    ]


def certificate_pdf(fields: CertificateFields) -> bytes:
    """Draw the two-page certificate of ``fields``: the data page and the technical annex."""
    wording = _WORDING[fields.language]
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(wording.title)

    y = _draw_heading(canvas, wording.title, wording.intro)
    for label, value in certificate_lines(fields):
        y = _draw_field(canvas, y, label, value, fields.layout)
    canvas.showPage()

    y = _draw_heading(canvas, wording.annex_title, wording.annex_intro)
    canvas.setFont("Courier", 9)
    for line in smtp_dialogue(fields):
        canvas.drawString(_MARGIN, y, line)
        y -= 13
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _draw_heading(canvas: Canvas, title: str, intro: str) -> float:
    y = _PAGE_HEIGHT - 70
    _draw_fitted(canvas, _MARGIN, y, title, font=_BOLD, size=14)
    canvas.setFont(_FONT, 10)
    canvas.drawString(_MARGIN, y - 24, intro)
    return y - 60


def _draw_field(canvas: Canvas, y: float, label: str, value: str, layout: Layout) -> float:
    if layout is Layout.INLINE:
        _draw_fitted(canvas, _MARGIN, y, f"{label}: {value}", font=_FONT, size=10)
        return y - 20
    _draw_fitted(canvas, _MARGIN, y, f"{label}:", font=_BOLD, size=10)
    _draw_fitted(canvas, _VALUE_X, y, value, font=_FONT, size=10)
    return y - 20


def _draw_fitted(canvas: Canvas, x: float, y: float, text: str, *, font: str, size: float) -> None:
    """Draw ``text`` on one line, shrinking the font until it fits inside the right margin."""
    width = _PAGE_WIDTH - _MARGIN - x
    while size > 5 and stringWidth(text, font, size) > width:
        size -= 0.5
    canvas.setFont(font, size)
    canvas.drawString(x, y, text)


def plain_pdf(lines: Sequence[str], title: str = "Documento") -> bytes:
    """Draw a one-page PDF with ``lines`` of text: an invoice or an original attachment."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(title)
    y = _PAGE_HEIGHT - 70
    for line in lines:
        _draw_fitted(canvas, _MARGIN, y, line, font=_FONT, size=11)
        y -= 18
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def wrapper_pdf_with_embedded(
    inner_pdf: bytes, name: str = "Mail.pdf", extra_files: Sequence[PdfFile] = ()
) -> bytes:
    """Return a cover PDF that embeds ``inner_pdf`` as the file ``name``, then ``extra_files``."""
    cover = plain_pdf(
        [
            "Certificado de comunicación electrónica",
            f"El certificado firmado se incluye en este documento como {name}.",
        ],
        title="Certificado",
    )
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(cover)).pages:
        writer.add_page(page)
    writer.add_attachment(name, inner_pdf)
    for extra in extra_files:
        writer.add_attachment(extra.name or "adjunto.pdf", extra.data)

    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf() -> bytes:
    """Return the first bytes of a certificate PDF: it starts like a PDF and is not one."""
    return certificate_pdf(CertificateFields())[:700]


# MIME building


def attachment_filename(fields: CertificateFields, style: FilenameStyle) -> str:
    """Return the attachment name the evidence email gives the certificate of ``fields``."""
    if style is FilenameStyle.PLAIN:
        return f"Mail_{fields.certificate_id}.pdf"
    person = fields.recipient_name.replace(" ", "_")
    return f"Certificado_{person}_{fields.certificate_id}.pdf"


def evidence_email(
    certificates: CertificateFields | Sequence[CertificateFields] = CertificateFields(),
    *,
    packaging: Packaging = Packaging.ATTACHED,
    filename_style: FilenameStyle = FilenameStyle.PLAIN,
    charset: Charset = Charset.UTF8,
    transfer_encoding: TransferEncoding = TransferEncoding.QUOTED_PRINTABLE,
    sender: str = PROVIDER_FROM,
    mailbox: str = EVIDENCE_MAILBOX,
    forwarded_by: str | None = None,
    extra_pdfs: Sequence[PdfFile] = (),
    subject: str | None = None,
    sign_pdf: Callable[[bytes, CertificateFields], bytes] | None = None,
) -> bytes:
    """Return an evidence message from the provider with one certificate PDF per entry.

    The subject, body and language follow the first certificate. ``forwarded_by`` wraps the
    whole message in a forward (``message/rfc822``) from that address. ``extra_pdfs`` are
    attached as they are, after the certificates. ``sign_pdf`` turns each certificate PDF,
    as attached, into its signed form.
    """
    listed = [certificates] if isinstance(certificates, CertificateFields) else list(certificates)
    first = listed[0] if listed else CertificateFields()
    wording = _WORDING[first.language]
    subject = subject or wording.email_subject.format(subject=first.subject)
    quoted = _quoted(first.subject, charset)
    body = wording.email_body.format(quoted=quoted, recipient=first.recipient_name)

    parts = [_text_part(body, charset, transfer_encoding)]
    parts += [_certificate_part(fields, packaging, filename_style, sign_pdf) for fields in listed]
    parts += [_pdf_part(pdf.name, pdf.data, pdf.content_type, filename_style) for pdf in extra_pdfs]
    date = max((fields.delivered_at for fields in listed), default=SENT_AT) + EVIDENCE_DELAY
    message = _message(sender, mailbox, subject, date, _multipart("mixed", parts))
    if forwarded_by is None:
        return message
    return _forward(
        message, subject=subject, date=date, wording=wording, sender=forwarded_by, mailbox=mailbox
    )


def rejection_email(
    send: CertificateFields = CertificateFields(),
    reason: RejectionReason = RejectionReason.NO_CREDIT,
    *,
    charset: Charset = Charset.UTF8,
    transfer_encoding: TransferEncoding = TransferEncoding.QUOTED_PRINTABLE,
    sender: str = PROVIDER_FROM,
    mailbox: str = EVIDENCE_MAILBOX,
    html: bool = False,
) -> bytes:
    """Return the provider's notice that ``send`` was not certified, without any PDF.

    The body names the reason, the recipient, the original subject, Message-ID and sending
    time with the labels of ``send.language``. ``html`` sends the body as HTML only.
    """
    wording = _WORDING[send.language]
    labels = wording.labels
    lines = [
        f"{labels['reason']}: {wording.reasons[reason]}",
        f"{labels['recipient']}: {send.recipient}",
        f"{labels['subject']}: {send.subject}",
        f"{labels['message_id']}: <{send.message_id}>",
        f"{labels['sent_at']}: {printed_time(send.sent_at, send)}",
    ]
    body = wording.rejection_body.format(fields="\n".join(lines))
    subject = wording.rejection_subject.format(subject=send.subject)
    part = _html_part(body, charset) if html else _text_part(body, charset, transfer_encoding)
    return _message(sender, mailbox, subject, send.sent_at + EVIDENCE_DELAY, part)


def unrelated_email(
    *,
    sender: str = "Mateo Quiñones <mateo.quinones@proveedor.example>",
    subject: str = "Reunión de obra del jueves",
    body: str = "Hola,\n\nConfirmo la reunión de obra del jueves a las 9:00.\n\nSaludos,\nMateo\n",
    mailbox: str = EVIDENCE_MAILBOX,
    date: datetime = SENT_AT,
) -> bytes:
    """Return an ordinary message from someone who is not the provider."""
    part = _text_part(body, Charset.UTF8, TransferEncoding.QUOTED_PRINTABLE)
    return _message(sender, mailbox, subject, date, part)


def invoice_email(
    *,
    number: str = "FV-2026-0042",
    sender: str = PROVIDER_FROM,
    mailbox: str = EVIDENCE_MAILBOX,
    date: datetime = SENT_AT,
) -> bytes:
    """Return the provider's monthly invoice, with the invoice attached as a PDF."""
    invoice = plain_pdf(
        [f"Factura {number}", "Servicio de correo certificado: 312 envíos", "Total: 187,20 EUR"],
        title=f"Factura {number}",
    )
    body = f"Adjuntamos la factura {number} de los servicios del mes.\n"
    parts = [
        _text_part(body, Charset.UTF8, TransferEncoding.QUOTED_PRINTABLE),
        _pdf_part(f"Factura_{number}.pdf", invoice, "application/pdf", FilenameStyle.PLAIN),
    ]
    subject = f"Factura {number} - Servicios de certificación"
    return _message(sender, mailbox, subject, date, _multipart("mixed", parts))


def _quoted(text: str, charset: Charset) -> str:
    # ISO-8859-1 has no curly quotes; Windows-1252 has them at 0x93 and 0x94.
    if charset is Charset.ISO_8859_1:
        return f"«{text}»"
    return f"“{text}”"


def _certificate_part(
    fields: CertificateFields,
    packaging: Packaging,
    style: FilenameStyle,
    sign_pdf: Callable[[bytes, CertificateFields], bytes] | None = None,
) -> bytes:
    pdf = certificate_pdf(fields)
    name: str | None = attachment_filename(fields, style)
    content_type = "application/pdf"
    if packaging is Packaging.EMBEDDED:
        pdf = wrapper_pdf_with_embedded(pdf, f"Mail_{fields.certificate_id}.pdf")
    elif packaging is Packaging.OCTET_STREAM:
        content_type = "application/octet-stream"
    elif packaging is Packaging.UNNAMED_OCTET_STREAM:
        content_type = "application/octet-stream"
        name = None
    if sign_pdf is not None:
        pdf = sign_pdf(pdf, fields)
    return _pdf_part(name, pdf, content_type, style)


def _pdf_part(name: str | None, data: bytes, content_type: str, style: FilenameStyle) -> bytes:
    if name is None:
        headers = [("Content-Type", content_type), ("Content-Disposition", "attachment")]
    else:
        headers = [
            ("Content-Type", f"{content_type}; {_filename_parameter('name', name, style)}"),
            ("Content-Disposition", f"attachment; {_filename_parameter('filename', name, style)}"),
        ]
    headers.append(("Content-Transfer-Encoding", "base64"))
    return _part(headers, _base64_lines(data))


def _filename_parameter(parameter: str, name: str, style: FilenameStyle) -> str:
    if style is FilenameStyle.RFC2231:
        return f"{parameter}*=UTF-8''{quote(name, safe='')}"
    if style is FilenameStyle.RFC2047 or not name.isascii():
        encoded = base64.b64encode(name.encode("utf-8")).decode("ascii")
        return f'{parameter}="=?UTF-8?B?{encoded}?="'
    return f'{parameter}="{name}"'


def _text_part(text: str, charset: Charset, encoding: TransferEncoding) -> bytes:
    return _encoded_text_part("text/plain", text, charset, encoding)


def _html_part(text: str, charset: Charset) -> bytes:
    paragraphs = "".join(
        "<p>" + "<br>".join(_escape(line) for line in block.splitlines()) + "</p>"
        for block in text.split("\n\n")
    )
    html = f"<html><head><style>p {{margin: 0}}</style></head><body>{paragraphs}</body></html>"
    return _encoded_text_part("text/html", html, charset, TransferEncoding.QUOTED_PRINTABLE)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _encoded_text_part(
    content_type: str, text: str, charset: Charset, encoding: TransferEncoding
) -> bytes:
    data = text.encode(charset.value)
    if encoding is TransferEncoding.QUOTED_PRINTABLE:
        body = quopri.encodestring(data).replace(b"\n", _CRLF)
    elif encoding is TransferEncoding.BASE64:
        body = _base64_lines(data.replace(b"\n", _CRLF))
    else:
        body = data.replace(b"\n", _CRLF)
    headers = [
        ("Content-Type", f'{content_type}; charset="{charset.value}"'),
        ("Content-Transfer-Encoding", encoding.value),
    ]
    return _part(headers, body)


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", _CRLF)


def _part(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = b"".join(f"{name}: {value}".encode("ascii") + _CRLF for name, value in headers)
    return head + _CRLF + body


def _boundary(parts: Sequence[bytes]) -> str:
    digest = hashlib.sha256(b"".join(parts)).hexdigest()[:24]
    return f"=_acuse_{digest}"


def _multipart(subtype: str, parts: Sequence[bytes]) -> bytes:
    boundary = _boundary(parts)
    marker = f"--{boundary}".encode("ascii")
    body = b"".join(marker + _CRLF + part.rstrip(_CRLF) + _CRLF for part in parts)
    body += marker + b"--" + _CRLF
    headers = [("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')]
    return _part(headers, body)


def _address_header(value: str) -> str:
    name, address = parseaddr(value)
    if not address.isascii():
        # An internationalised address (RFC 6532) travels as raw UTF-8.
        return f'"{name}" <{address}>' if name else address
    return formataddr((name, address), charset="utf-8")


def _subject_header(subject: str) -> str:
    if subject.isascii():
        return subject
    return Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _message(sender: str, mailbox: str, subject: str, date: datetime, body_part: bytes) -> bytes:
    """Return a whole message: envelope headers in front of ``body_part``'s own headers."""
    digest = hashlib.sha256(subject.encode() + body_part).hexdigest()[:20]
    domain = parseaddr(sender)[1].rsplit("@", 1)[-1]
    headers = [
        ("From", _address_header(sender)),
        ("To", _address_header(mailbox)),
        ("Subject", _subject_header(subject)),
        ("Date", format_datetime(date.astimezone(ZoneInfo("Europe/Madrid")))),
        ("Message-ID", f"<{digest}@{domain}>"),
        ("MIME-Version", "1.0"),
    ]
    head = b"".join(f"{name}: {value}".encode() + _CRLF for name, value in headers)
    return head + body_part


def _forward(
    inner: bytes, *, subject: str, date: datetime, wording: _Wording, sender: str, mailbox: str
) -> bytes:
    note = _text_part(wording.forward_body, Charset.UTF8, TransferEncoding.QUOTED_PRINTABLE)
    forwarded = _part([("Content-Type", "message/rfc822")], inner)
    body = _multipart("mixed", [note, forwarded])
    forward_subject = wording.forward_prefix + subject
    return _message(sender, mailbox, forward_subject, date + EVIDENCE_DELAY, body)


# Signed variants: the same evidence, signed as a genuine provider would sign it (see
# tests.trust_pki for the invented keys), and forgeries of it.

SIGNATURE_DELAY = timedelta(minutes=1)


def sign_pdf(
    pdf: bytes,
    *,
    signer: KeyPair | None = None,
    timestamp_at: datetime | None = SENT_AT + DELIVERY_DELAY + SIGNATURE_DELAY,
    tsa: KeyPair | None = None,
) -> bytes:
    """Sign ``pdf`` with pyHanko as the test provider, with a timestamp at ``timestamp_at``.

    ``timestamp_at=None`` signs without a timestamp. ``tsa`` defaults to the test TSA.
    """
    pki = invented_pki()
    signer = signer or pki.signer
    chain = [pki.ca.asn1_certificate, pki.rogue_ca.asn1_certificate]
    simple_signer = signers.SimpleSigner(
        signing_cert=signer.asn1_certificate,
        signing_key=signer.asn1_key,
        cert_registry=SimpleCertificateStore.from_certs(chain),
    )
    timestamper = None
    if timestamp_at is not None:
        tsa = tsa or pki.tsa
        timestamper = DummyTimeStamper(
            tsa_cert=tsa.asn1_certificate,
            tsa_key=tsa.asn1_key,
            certs_to_embed=SimpleCertificateStore.from_certs(chain),
            fixed_dt=timestamp_at,
        )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    metadata = signers.PdfSignatureMetadata(field_name="FirmaLleida")
    output = signers.sign_pdf(writer, metadata, signer=simple_signer, timestamper=timestamper)
    return output.getvalue()


def sign_certificate(pdf: bytes, fields: CertificateFields) -> bytes:
    """Sign a certificate PDF the way the provider does, with a timestamp after the delivery."""
    return sign_pdf(pdf, timestamp_at=fields.delivered_at + SIGNATURE_DELAY)


def append_content(signed: bytes) -> bytes:
    """Return ``signed`` with an incremental update that draws more text on its first page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    stream = generic.StreamObject(stream_data=b"BT /F1 12 Tf 60 60 Td (Entregado) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stream))
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def dkim_sign(
    raw: bytes,
    *,
    key: DkimKey | None = None,
    domain: str = DKIM_DOMAIN,
    selector: str = DKIM_SELECTOR,
    body_length: bool = False,
) -> bytes:
    """Return ``raw`` with a DKIM-Signature header in front, signed by ``key``.

    ``body_length`` adds the ``l=`` tag, so the signature covers only the body as it is now.
    """
    key = key or invented_pki().dkim
    header = dkim.sign(
        raw,
        selector.encode("ascii"),
        domain.encode("ascii"),
        key.private_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type"],
        length=body_length,
    )
    return header + raw


def signed_evidence_email(
    certificates: CertificateFields | Sequence[CertificateFields] = CertificateFields(),
    **options: object,
) -> bytes:
    """Return ``evidence_email(certificates, **options)`` with signed PDFs and DKIM."""
    raw = evidence_email(certificates, sign_pdf=sign_certificate, **options)  # type: ignore[arg-type]
    return dkim_sign(raw)


def signed_rejection_email(
    send: CertificateFields = CertificateFields(),
    reason: RejectionReason = RejectionReason.NO_CREDIT,
) -> bytes:
    """Return ``rejection_email(send, reason)`` signed with DKIM."""
    return dkim_sign(rejection_email(send, reason))


def forwarded_email(inner: bytes, *, sender: str = FORWARDER) -> bytes:
    """Return ``inner`` forwarded as it is (``message/rfc822``) by ``sender``."""
    date = SENT_AT + DELIVERY_DELAY + EVIDENCE_DELAY
    return _forward(
        inner,
        subject="Evidencia de envío",
        date=date,
        wording=_SPANISH,
        sender=sender,
        mailbox=EVIDENCE_MAILBOX,
    )
