"""Reading labelled fields, times and SMTP replies out of certificate and notice text."""

from datetime import UTC, datetime

import pytest

from monitor.certificate_text import (
    addresses_in_text,
    count_certificate_labels,
    find_smtp_reply,
    read_evidence_fields,
    read_labels,
)
from monitor.provider import LabelField, ProviderRules, rules_for
from tests.evidence_factory import (
    CertificateFields,
    Language,
    Outcome,
    TimeStyle,
    certificate_lines,
    lleida_profile,
    smtp_dialogue,
)

SENT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
DELIVERED = datetime(2026, 3, 2, 14, 5, 7, tzinfo=UTC)


@pytest.fixture
def rules() -> ProviderRules:
    return rules_for(lleida_profile())


def inline_text(fields: CertificateFields) -> str:
    """The certificate text as pypdf extracts an inline layout, annex included."""
    lines = [f"{label}: {value}" for label, value in certificate_lines(fields)]
    return "\n".join(["Certificado", *lines, "Anexo técnico del envío", *smtp_dialogue(fields)])


def test_label_with_value_on_same_line(rules: ProviderRules) -> None:
    labelled = read_labels("Destinatario: asuncion@correo.example", rules)

    assert labelled.get(LabelField.RECIPIENT) == "asuncion@correo.example"


def test_label_with_value_on_next_line(rules: ProviderRules) -> None:
    labelled = read_labels("Destinatario:\n\n  asuncion@correo.example\n", rules)

    assert labelled.get(LabelField.RECIPIENT) == "asuncion@correo.example"


def test_label_without_colon_alone(rules: ProviderRules) -> None:
    labelled = read_labels("DESTINATARIO\nasuncion@correo.example", rules)

    assert labelled.get(LabelField.RECIPIENT) == "asuncion@correo.example"


def test_label_compared_without_accents(rules: ProviderRules) -> None:
    labelled = read_labels("FECHA Y HORA DE ENVIO : 02/03/2026 15:05", rules)

    assert labelled.get(LabelField.SENT_AT) == "02/03/2026 15:05"


def test_label_followed_by_label_has_no_value(rules: ProviderRules) -> None:
    labelled = read_labels("Remitente:\nDestinatario:\nasuncion@correo.example", rules)

    assert labelled.get(LabelField.SENDER) is None
    assert labelled.get(LabelField.RECIPIENT) == "asuncion@correo.example"
    assert LabelField.SENDER in labelled.labels


def test_value_that_is_also_a_label_word(rules: ProviderRules) -> None:
    labelled = read_labels("Status:\nDelivered\nMessage hash:\nabc123", rules)

    assert labelled.get(LabelField.STATUS) == "Delivered"
    assert labelled.get(LabelField.DELIVERED_AT) is None
    assert labelled.get(LabelField.CONTENT_HASH) == "abc123"


def test_first_value_wins(rules: ProviderRules) -> None:
    text = "Asunto: Estado de cuenta\nS: 250 Ok\nSubject: otra cosa"

    assert read_labels(text, rules).get(LabelField.SUBJECT) == "Estado de cuenta"


def test_zone_note_joins_time_value(rules: ProviderRules) -> None:
    labelled = read_labels("Fecha de entrega (UTC+01:00): 02/03/2026 15:05", rules)

    assert labelled.get(LabelField.DELIVERED_AT) == "02/03/2026 15:05 (UTC+01:00)"


def test_note_ignored_for_other_fields(rules: ProviderRules) -> None:
    labelled = read_labels("Huella digital (SHA-256): abc123", rules)

    assert labelled.get(LabelField.CONTENT_HASH) == "abc123"


def test_unknown_lines_ignored(rules: ProviderRules) -> None:
    text = "Estimado cliente:\nC: MAIL FROM:<a@b.example>\nS: 250 2.1.0 Ok"

    assert read_labels(text, rules).labels == frozenset()


def test_certificate_label_count(rules: ProviderRules) -> None:
    assert count_certificate_labels(inline_text(CertificateFields()), rules) == 9


@pytest.mark.parametrize("language", list(Language))
def test_delivered_fields(rules: ProviderRules, language: Language) -> None:
    fields = read_evidence_fields(inline_text(CertificateFields(language=language)), rules)

    assert fields.certificate_id == "LLD-20260302-000123"
    assert fields.sender == "cartera@constructora.example"
    assert fields.recipients == ("asuncion.penaloza@correo.example",)
    assert fields.subject == "Estado de cuenta negocio 1042 - Torres del Parque"
    assert fields.message_id == "20260302140500.1042@paco.constructora.example"
    assert fields.sent_at == SENT
    assert fields.delivered_at == DELIVERED
    assert not fields.failed
    assert fields.smtp_code is None
    assert fields.problems == ()


@pytest.mark.parametrize("language", list(Language))
def test_failed_fields(rules: ProviderRules, language: Language) -> None:
    certificate = CertificateFields(language=language, outcome=Outcome.FAILED)

    fields = read_evidence_fields(inline_text(certificate), rules)

    assert fields.failed
    assert fields.delivered_at == DELIVERED
    assert fields.smtp_code == "550 5.1.1"
    assert fields.smtp_detail == (
        "550 5.1.1 <asuncion.penaloza@correo.example>: Recipient address rejected: User unknown"
    )


@pytest.mark.parametrize("style", list(TimeStyle))
def test_time_styles_read(rules: ProviderRules, style: TimeStyle) -> None:
    fields = read_evidence_fields(inline_text(CertificateFields(time_style=style)), rules)

    assert fields.sent_at == SENT
    assert fields.delivered_at == DELIVERED


def test_time_printed_in_bogota_with_zone(rules: ProviderRules) -> None:
    certificate = CertificateFields(time_zone="America/Bogota", time_style=TimeStyle.NUMERIC_ZONE)

    fields = read_evidence_fields(inline_text(certificate), rules)

    assert fields.sent_at == SENT


def test_failure_only_in_status(rules: ProviderRules) -> None:
    text = (
        "Destinatario: a@correo.example\nFecha de entrega: 02/03/2026 15:05\nEstado: No entregado"
    )

    fields = read_evidence_fields(text, rules)

    assert fields.failed
    assert fields.smtp_code is None


def test_failure_reply_from_annex(rules: ProviderRules) -> None:
    text = (
        "Destinatario: a@correo.example\nFecha de entrega: 02/03/2026 15:05\n"
        "Estado: Error en la entrega\nC: RCPT TO:<a@correo.example>\n"
        "S: 552 5.2.2 <a@correo.example>: Mailbox full\nC: QUIT"
    )

    fields = read_evidence_fields(text, rules)

    assert fields.smtp_code == "552 5.2.2"
    assert fields.smtp_detail == "552 5.2.2 <a@correo.example>: Mailbox full"


def test_smtp_detail_label_preferred(rules: ProviderRules) -> None:
    text = (
        "Destinatario: a@correo.example\nFecha de entrega: 02/03/2026 15:05 - 550 rejected\n"
        "Respuesta SMTP: 550 5.7.1 Message refused by policy"
    )

    fields = read_evidence_fields(text, rules)

    assert fields.smtp_code == "550 5.7.1"
    assert fields.smtp_detail == "550 5.7.1 Message refused by policy"


def test_delivered_reply_recorded_without_failure(rules: ProviderRules) -> None:
    text = (
        "Destinatario: a@correo.example\nFecha de entrega: 02/03/2026 15:05\n"
        "Estado: Entregado\nRespuesta SMTP: 250 2.0.0 Ok: queued as 4F2A"
    )

    fields = read_evidence_fields(text, rules)

    assert not fields.failed
    assert fields.smtp_code == "250 2.0.0"


def test_missing_recipient_named(rules: ProviderRules) -> None:
    fields = read_evidence_fields("Fecha y hora de envío: 02/03/2026 15:05", rules)

    assert len(fields.problems) == 1
    assert fields.problems[0].startswith("recipient:")


def test_recipient_without_address_named(rules: ProviderRules) -> None:
    text = "Destinatario: Asunción Peñaloza\nFecha y hora de envío: 02/03/2026 15:05"

    fields = read_evidence_fields(text, rules)

    assert fields.problems == ("recipient: no email address in 'Asunción Peñaloza'",)


def test_missing_time_named(rules: ProviderRules) -> None:
    text = "Destinatario: a@correo.example\nFecha y hora de entrega: pendiente"

    fields = read_evidence_fields(text, rules)

    assert fields.problems == (
        "time: no sending or delivery time could be read (delivered_at='pendiente')",
    )


def test_one_time_is_enough(rules: ProviderRules) -> None:
    text = "Destinatario: a@correo.example\nFecha y hora de envío: 02/03/2026 15:05"

    assert read_evidence_fields(text, rules).problems == ()


def test_notice_fields(rules: ProviderRules) -> None:
    text = (
        "Su correo no ha sido certificado.\n\nMotivo: Saldo insuficiente.\n"
        "Destinatario: A <a@correo.example>; b@correo.example\nAsunto: Cuota inicial\n"
        "Identificador del mensaje: <orig.1@paco.example>"
    )

    fields = read_evidence_fields(text, rules)

    assert fields.reason == "Saldo insuficiente."
    assert fields.recipients == ("a@correo.example", "b@correo.example")
    assert fields.subject == "Cuota inicial"
    assert fields.message_id == "orig.1@paco.example"


def test_addresses_in_text_lowercased() -> None:
    assert addresses_in_text("Asunción <Asuncion.P@Correo.Example>") == (
        "asuncion.p@correo.example",
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("550 5.1.1 <a@b.example>: User unknown", "550 5.1.1"),
        ("451-4.7.1 Greylisted, try later", "451 4.7.1"),
        ("02/03/2026 15:05:07 CET - 554 Transaction failed", "554"),
        ("250 2.0.0 Ok: queued", "250 2.0.0"),
    ],
)
def test_smtp_reply_code(text: str, code: str) -> None:
    reply = find_smtp_reply(text)

    assert reply is not None
    assert reply.code == code


@pytest.mark.parametrize("text", ["02/03/2026 15:05:07 CET", "Entregado", "2026-03-02 15:05", ""])
def test_no_smtp_reply(text: str) -> None:
    assert find_smtp_reply(text) is None
