"""Alert emails in Spanish and English: subject, text, HTML and CSV of every kind.

The Spanish catalog is translated after the English message ids are extracted. So the Spanish
checks look at what the locale decides whatever the words: dates in Bogotá's zone written the
Colombian way, numbers grouped by Babel for es_CO, the CSV separator, and accents in the data.
The exact Spanish subject is checked once the catalog contains it.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from config.alert_settings import AlertKind
from config.settings import Settings, project_view
from reconcile.alert_examples import example_details
from reconcile.alert_models import AlertEvent
from reconcile.alert_render import (
    DaySummary,
    ItemData,
    TemplateProblem,
    alert_subject,
    build_message,
    render_alert,
    render_digest,
)
from reconcile.alert_routing import AlertScope, installation_scope, project_scope

NOW = datetime(2026, 11, 4, 1, 5, tzinfo=UTC)
SENT = "2026-11-03T19:00:00+00:00"
LOCAL_SENT = {"es_CO": "03/11/2026 14:00 -05:00", "en": "2026-11-03 14:00 -05:00"}
SEND_DETAILS: dict[str, Any] = {
    "send_id": 7,
    "negocio": "1051",
    "inmueble": "Torre B - 402",
    "client": "Hernán Zuluaga Peñaloza",
    "recipient": "hernan.zuluaga@correo.example",
    "subject": "Carta de recaudo negocio 1051 - Torres del Parque",
    "sent_at": SENT,
    "deadline": "2026-11-04T01:00:00+00:00",
    "certificate_id": "LLD-20261103-000104",
    "delivered_at": "2026-11-03T19:00:07+00:00",
    "smtp_code": "550",
    "smtp_detail": "550 5.1.1 <hernan.zuluaga@correo.example>: Recipient address rejected",
    "evidence_reason": "Saldo insuficiente para certificar el envío.",
}
SAMPLES: dict[AlertKind, dict[str, Any]] = {
    AlertKind.CERTIFICATION_MISSING: {**SEND_DETAILS, "state": "missing"},
    AlertKind.DELIVERY_FAILED: {**SEND_DETAILS, "state": "delivery_failed"},
    AlertKind.CERTIFICATION_REJECTED: {**SEND_DETAILS, "state": "rejected", "smtp_code": None},
    AlertKind.NOT_COPIED: {**SEND_DETAILS, "state": "not_copied"},
    AlertKind.EVIDENCE_UNVERIFIED: {**SEND_DETAILS, "state": "unverified"},
    AlertKind.ORPHAN_EVIDENCE: {
        "evidence_id": 3,
        "kind": "delivered",
        "certificate_id": "LLD-20261103-000999",
        "recipient": "Ñusta Muñoz <nusta.munoz@correo.example>",
        "subject": "Estado de cuenta - Torre Añil",
        "time": SENT,
    },
    AlertKind.MAILBOX_UNREACHABLE: {
        "host": "imap.constructora.example",
        "folder": "Evidencias/Año 2026",
        "username": "evidencias-tdp2@constructora.example",
        "failing_since": SENT,
        "consecutive_failures": 1234,
        "last_error": "Inicio de sesión rechazado: contraseña inválida",
    },
    AlertKind.EVIDENCE_SILENCE: {
        "last_evidence_at": SENT,
        "sends_waiting": 1234,
        "oldest_send_at": SENT,
    },
    AlertKind.QUARANTINED_MESSAGES: {
        "message_pk": 9,
        "from_address": "noreply@certificado.lleida.net",
        "subject": "Correo certificado: Notificación de cobro",
        "stored_at": SENT,
        "reason": "unreadable_pdf: el PDF está dañado",
    },
    AlertKind.SEND_LOG_FAILED: {
        "path": "/srv/paco/exportaciones/cartera-añil.csv",
        "failed_at": SENT,
        "reason": "El registro de envíos no tiene columna para sent_at ('Fecha de envío').",
    },
    AlertKind.ALERT_DELIVERY_FAILING: {
        "failing_since": SENT,
        "waiting": 1234,
        "last_error": "Cannot connect to the SMTP server smtp.example.co:587: refusé.",
    },
}
# A value from the data of each kind that has an accent and must survive every part.
ACCENTED = {
    **dict.fromkeys(
        [
            AlertKind.CERTIFICATION_MISSING,
            AlertKind.DELIVERY_FAILED,
            AlertKind.CERTIFICATION_REJECTED,
            AlertKind.NOT_COPIED,
            AlertKind.EVIDENCE_UNVERIFIED,
        ],
        "Hernán Zuluaga Peñaloza",
    ),
    AlertKind.ORPHAN_EVIDENCE: "Torre Añil",
    AlertKind.MAILBOX_UNREACHABLE: "contraseña inválida",
    AlertKind.EVIDENCE_SILENCE: None,
    AlertKind.QUARANTINED_MESSAGES: "Notificación de cobro",
    AlertKind.SEND_LOG_FAILED: "Fecha de envío",
    AlertKind.ALERT_DELIVERY_FAILING: "refusé",
}
LOCAL_TIME_KEY = {
    AlertKind.ORPHAN_EVIDENCE: "time",
    AlertKind.MAILBOX_UNREACHABLE: "failing_since",
    AlertKind.EVIDENCE_SILENCE: "last_evidence_at",
    AlertKind.QUARANTINED_MESSAGES: "stored_at",
    AlertKind.SEND_LOG_FAILED: "failed_at",
    AlertKind.ALERT_DELIVERY_FAILING: "failing_since",
}
SPANISH_SUBJECT = "[acuse] Torres del Parque: 3 envíos sin certificar"


def settings_for(make_settings: Callable[..., Settings], locale: str, **alerts: Any) -> Settings:
    return make_settings(
        alerts=alerts,
        defaults={"locale": locale},
        projects=[
            {
                "code": "TDP2",
                "name": "Torres del Parque",
                "timezone": "America/Bogota",
                "locale": locale,
                "managers": ["cartera@constructora.example"],
            }
        ],
    )


def scope_of(settings: Settings, kind: AlertKind) -> AlertScope:
    if kind is AlertKind.ALERT_DELIVERY_FAILING:
        return installation_scope(settings)
    return project_scope(project_view(settings, "TDP2"))


def csv_rows(data: bytes, locale: str) -> list[list[str]]:
    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=";" if locale == "es_CO" else ","))


@pytest.mark.parametrize("locale", ["es_CO", "en"])
@pytest.mark.parametrize("kind", list(AlertKind))
def test_rendering_of_each_kind(
    kind: AlertKind, locale: str, make_settings: Callable[..., Settings]
) -> None:
    settings = settings_for(make_settings, locale)
    scope = scope_of(settings, kind)
    item = ItemData(kind, AlertEvent.RAISED, SAMPLES[kind])

    email = render_alert(settings, scope, [item], NOW)

    assert email.subject.startswith("[acuse] ")
    assert (scope.name in email.subject) or kind is AlertKind.ALERT_DELIVERY_FAILING
    time_key = LOCAL_TIME_KEY.get(kind, "sent_at")
    expected_time = LOCAL_SENT[locale]
    assert SAMPLES[kind][time_key] == SENT
    assert expected_time in email.text
    assert expected_time in email.html
    assert "America/Bogota" in email.text
    accented = ACCENTED[kind]
    if accented is not None:
        assert accented in email.text
        assert accented in email.html
    assert email.attachment is not None
    rows = csv_rows(email.attachment, locale)
    assert len(rows) == 2
    assert expected_time in rows[1]
    if accented is not None:
        assert any(accented in cell for cell in rows[1])


@pytest.mark.parametrize("locale", ["es_CO", "en"])
def test_counts_follow_locale(locale: str, make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, locale)
    scope = scope_of(settings, AlertKind.EVIDENCE_SILENCE)
    item = ItemData(
        AlertKind.EVIDENCE_SILENCE, AlertEvent.RAISED, SAMPLES[AlertKind.EVIDENCE_SILENCE]
    )

    email = render_alert(settings, scope, [item], NOW)

    assert ("1.234" if locale == "es_CO" else "1,234") in email.text


def test_subject_count_is_grouped(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    scope = scope_of(settings, AlertKind.CERTIFICATION_MISSING)

    subject = alert_subject(scope, AlertKind.CERTIFICATION_MISSING, AlertEvent.RAISED, 1500)

    assert "1.500" in subject


def test_english_subject_is_plural(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "en")
    scope = scope_of(settings, AlertKind.CERTIFICATION_MISSING)

    subject = alert_subject(scope, AlertKind.CERTIFICATION_MISSING, AlertEvent.RAISED, 3)

    assert subject == "[acuse] Torres del Parque: 3 sends not certified"


def test_spanish_subject_from_catalog(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    scope = scope_of(settings, AlertKind.CERTIFICATION_MISSING)

    subject = alert_subject(scope, AlertKind.CERTIFICATION_MISSING, AlertEvent.RAISED, 3)

    assert subject == SPANISH_SUBJECT


def test_html_escapes_data(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "en")
    item = ItemData(
        AlertKind.DELIVERY_FAILED, AlertEvent.RAISED, SAMPLES[AlertKind.DELIVERY_FAILED]
    )

    email = render_alert(settings, scope_of(settings, AlertKind.DELIVERY_FAILED), [item], NOW)

    assert "&lt;hernan.zuluaga@correo.example&gt;" in email.html
    assert "<hernan.zuluaga@correo.example>" not in email.html
    assert "550 5.1.1 <hernan.zuluaga@correo.example>" in email.text


def test_spanish_csv_uses_semicolons(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, SAMPLES[AlertKind.NOT_COPIED])

    email = render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)

    assert email.attachment is not None
    assert email.attachment.startswith("\ufeff".encode())
    header = email.attachment.decode("utf-8-sig").splitlines()[0]
    assert header.count(";") == 7


def test_resolution_lists_reason(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "en")
    details = {**SEND_DETAILS, "state": "certified", "resolution": "certified"}
    item = ItemData(AlertKind.CERTIFICATION_MISSING, AlertEvent.RESOLVED, details)

    email = render_alert(settings, scope_of(settings, AlertKind.CERTIFICATION_MISSING), [item], NOW)

    assert email.subject == "[acuse] Torres del Parque: 1 problem solved"
    assert "Resolution: certified late" in email.text
    assert "Certificate LLD-20261103-000104, delivered 2026-11-03 14:00 -05:00" in email.text


def test_reminder_subject_marks_reminder(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "en")
    scope = scope_of(settings, AlertKind.NOT_COPIED)

    subject = alert_subject(scope, AlertKind.NOT_COPIED, AlertEvent.REMINDER, 2)

    assert subject == "[acuse] Torres del Parque: 2 sends without Lleida.net in copy (reminder)"


@pytest.mark.parametrize("locale", ["es_CO", "en"])
def test_digest_rendering(locale: str, make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, locale)
    scope = scope_of(settings, AlertKind.CERTIFICATION_MISSING)
    items = [
        ItemData(
            AlertKind.CERTIFICATION_MISSING,
            AlertEvent.RAISED,
            SAMPLES[AlertKind.CERTIFICATION_MISSING],
        ),
        ItemData(AlertKind.ORPHAN_EVIDENCE, AlertEvent.RAISED, SAMPLES[AlertKind.ORPHAN_EVIDENCE]),
    ]
    period = (datetime(2026, 11, 3, 12, tzinfo=UTC), datetime(2026, 11, 4, 12, tzinfo=UTC))

    rendered_at = datetime(2026, 11, 5, 0, 35, tzinfo=UTC)

    email = render_digest(
        settings, scope, items, DaySummary(sends=1234, certified=1200), period, now=rendered_at
    )

    assert ("1.234" if locale == "es_CO" else "1,234") in email.text
    expected_date = "4 de noviembre de 2026" if locale == "es_CO" else "November 4, 2026"
    assert expected_date in email.subject
    assert (
        "04/11/2026 07:00 -05:00" if locale == "es_CO" else "2026-11-04 07:00 -05:00"
    ) in email.text
    assert "Hernán Zuluaga Peñaloza" in email.html
    assert email.attachment is not None
    assert len(csv_rows(email.attachment, locale)) == 3
    footer = email.text.strip().splitlines()[-1]
    assert ("04/11/2026 19:35 -05:00" if locale == "es_CO" else "2026-11-04 19:35 -05:00") in footer


def test_mime_parts_and_headers(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, SAMPLES[AlertKind.NOT_COPIED])
    rendered = render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)

    raw = build_message(
        rendered, "Acuse <alertas@example.co>", ["cartera@constructora.example"], "<1@x>", NOW
    )

    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_body(("plain",)) is not None
    assert parsed.get_body(("html",)) is not None
    attachments = list(parsed.iter_attachments())
    assert [part.get_content_type() for part in attachments] == ["text/csv"]
    assert b"\r\n" in raw


def test_long_headers_start_on_first_line(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, SAMPLES[AlertKind.NOT_COPIED])
    rendered = render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)
    long_subject = replace(rendered, subject="[acuse]  " + " ".join(["Torres del Parque"] * 6))
    message_id = "<179643299943.7343.4414231688330394203.acuse.12@constructora.example>"

    raw = build_message(
        long_subject,
        "Acuse <alertas@example.co>",
        ["cartera@constructora.example"],
        message_id,
        NOW,
    )

    headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert b"Subject:" not in headers
    assert b"Message-ID:" not in headers
    assert all(len(line) <= 78 for line in headers if line.startswith(b"Subject:"))
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == long_subject.subject
    assert parsed["Message-ID"] == message_id


def test_operator_template_overrides_builtin(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "plantillas"
    folder.mkdir()
    (folder / "alert.txt").write_text(
        "Aviso para {{ scope.name }}: {{ section.rows | length }} filas.\n", encoding="utf-8"
    )
    settings = settings_for(make_settings, "en", templates=str(folder))
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, SAMPLES[AlertKind.NOT_COPIED])

    email = render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)

    assert email.text == "Aviso para Torres del Parque: 1 filas.\n"
    assert "<table" in email.html


def test_missing_template_folder_is_named(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(make_settings, "en", templates="no-such-folder")
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, SAMPLES[AlertKind.NOT_COPIED])

    with pytest.raises(TemplateProblem) as caught:
        render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)

    assert "no-such-folder" in str(caught.value)
    assert "[alerts] templates" in str(caught.value)


def test_unverified_reason_lists_checks(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    details = {
        **SAMPLES[AlertKind.EVIDENCE_UNVERIFIED],
        "trust_reasons": "DKIM: the message has no DKIM signature\n"
        "PDF signature: the signer CN=Falso does not match signer_pattern",
    }
    item = ItemData(AlertKind.EVIDENCE_UNVERIFIED, AlertEvent.RAISED, details)
    scope = scope_of(settings, AlertKind.EVIDENCE_UNVERIFIED)

    email = render_alert(settings, scope, [item], NOW)

    assert "DKIM: el mensaje no tiene firma DKIM" in email.text
    assert "firma del PDF: the signer CN=Falso does not match signer_pattern" in email.text
    assert "Saldo insuficiente" not in email.text


def test_quarantine_reason_names_code(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "es_CO")
    item = ItemData(
        AlertKind.QUARANTINED_MESSAGES,
        AlertEvent.RAISED,
        SAMPLES[AlertKind.QUARANTINED_MESSAGES],
    )
    scope = scope_of(settings, AlertKind.QUARANTINED_MESSAGES)

    email = render_alert(settings, scope, [item], NOW)

    assert "PDF ilegible: el PDF está dañado" in email.text
    assert "unreadable_pdf" not in email.text


@pytest.mark.parametrize(
    ("kind", "own", "foreign"),
    [
        (AlertKind.DELIVERY_FAILED, "User unknown", "Saldo insuficiente"),
        (AlertKind.CERTIFICATION_REJECTED, "Saldo insuficiente", "User unknown"),
        (AlertKind.CERTIFICATION_MISSING, "", "LLD-EJEMPLO"),
    ],
)
def test_example_reason_fits_its_kind(
    kind: AlertKind, own: str, foreign: str, make_settings: Callable[..., Settings]
) -> None:
    settings = settings_for(make_settings, "en")
    item = ItemData(kind, AlertEvent.RAISED, example_details(kind, NOW))

    text = render_alert(settings, scope_of(settings, kind), [item], NOW).text

    assert own in text
    assert foreign not in text
    assert "User unknown Saldo" not in text


def test_csv_defuses_hostile_cells(make_settings: Callable[..., Settings]) -> None:
    settings = settings_for(make_settings, "en")
    details = {
        **SAMPLES[AlertKind.NOT_COPIED],
        "subject": '=HYPERLINK("http://evil.example/","click")',
        "client": "Ana \x1b[31mRoja\u202e",
    }
    item = ItemData(AlertKind.NOT_COPIED, AlertEvent.RAISED, details)

    email = render_alert(settings, scope_of(settings, AlertKind.NOT_COPIED), [item], NOW)

    assert email.attachment is not None
    text = email.attachment.decode("utf-8-sig")
    assert "'=HYPERLINK(" in text
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "Ana \\x1b[31mRoja\\u202e" in text
