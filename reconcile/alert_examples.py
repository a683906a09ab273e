"""Invented details for each kind, so ``acuse alerts preview`` can show a template without data."""

from datetime import datetime, timedelta
from typing import Any

from config.alert_settings import AlertKind


def example_details(kind: AlertKind, now: datetime) -> dict[str, Any]:
    """Plausible, invented details of one alert of ``kind`` at ``now``."""
    sent = now - timedelta(hours=7)
    send = {
        "send_id": 0,
        "notification_type": "Estado de cuenta",
        "negocio": "1075",
        "inmueble": "Torre C - 802",
        "client": "Fabio Londoño",
        "recipient": "fabio.londono@correo.example",
        "subject": "Estado de cuenta negocio 1075",
        "sent_at": sent.isoformat(),
        "deadline": (sent + timedelta(hours=6)).isoformat(),
        "certificate_id": None,
        "delivered_at": None,
        "smtp_code": None,
        "smtp_detail": None,
        "evidence_reason": None,
        "trust_reasons": None,
    }
    evidence = {
        "certificate_id": "LLD-EJEMPLO-000001",
        "delivered_at": (sent + timedelta(seconds=7)).isoformat(),
    }
    # Each kind carries only the facts its own evidence has: a bounce has an SMTP reply, a
    # rejection has Lleida.net's reason, unverified evidence its failed checks, and a missing
    # send has no evidence at all.
    examples: dict[AlertKind, dict[str, Any]] = {
        AlertKind.CERTIFICATION_MISSING: {**send, "state": "missing"},
        AlertKind.DELIVERY_FAILED: {
            **send,
            **evidence,
            "state": "delivery_failed",
            "smtp_code": "550",
            "smtp_detail": "550 5.1.1 <fabio.londono@correo.example>: User unknown",
        },
        AlertKind.CERTIFICATION_REJECTED: {
            **send,
            **evidence,
            "state": "rejected",
            "evidence_reason": "Saldo insuficiente para certificar el envío.",
        },
        AlertKind.NOT_COPIED: {**send, "state": "not_copied"},
        AlertKind.EVIDENCE_UNVERIFIED: {
            **send,
            **evidence,
            "state": "unverified",
            "trust_reasons": "DKIM: the message has no DKIM signature",
        },
        AlertKind.ORPHAN_EVIDENCE: {
            "evidence_id": 0,
            "kind": "delivered",
            "certificate_id": "LLD-EJEMPLO-000002",
            "recipient": "asuncion.penaloza@correo.example",
            "subject": "Estado de cuenta negocio 1042",
            "time": sent.isoformat(),
        },
        AlertKind.MAILBOX_UNREACHABLE: {
            "host": "imap.example.co",
            "folder": "INBOX",
            "username": "evidencias@example.co",
            "failing_since": (now - timedelta(hours=1)).isoformat(),
            "consecutive_failures": 12,
            "last_error": "Login failed: invalid credentials.",
        },
        AlertKind.EVIDENCE_SILENCE: {
            "last_evidence_at": (now - timedelta(hours=13)).isoformat(),
            "sends_waiting": 42,
            "oldest_send_at": (now - timedelta(hours=12)).isoformat(),
        },
        AlertKind.QUARANTINED_MESSAGES: {
            "message_pk": 0,
            "from_address": "noreply@certificado.lleida.net",
            "subject": "Correo certificado: Estado de cuenta",
            "stored_at": sent.isoformat(),
            "reason": "unreadable_pdf: the PDF is damaged",
        },
        AlertKind.SEND_LOG_FAILED: {
            "path": "/srv/paco/exports/tdp2/cartera-2026-11.csv",
            "failed_at": (now - timedelta(minutes=20)).isoformat(),
            "reason": "Send log /srv/paco/exports/tdp2/cartera-2026-11.csv has no column for "
            "sent_at ('Fecha de envío') in its first 30 rows.",
        },
        AlertKind.ALERT_DELIVERY_FAILING: {
            "failing_since": (now - timedelta(hours=2)).isoformat(),
            "waiting": 7,
            "last_error": "Cannot connect to the SMTP server smtp.example.co:587.",
        },
    }
    return examples[kind]
