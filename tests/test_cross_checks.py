"""Cross-checks of a certificate against its email, its signature time and its annex."""

from datetime import UTC, datetime, timedelta

from monitor.cross_checks import CertificateClaims, EmailContext, certificate_problems
from monitor.provider import rules_for
from tests.evidence_factory import lleida_profile

SENT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
DELIVERED = SENT + timedelta(seconds=7)
SUBJECT = "Estado de cuenta negocio 1042 - Torres del Parque"
ANNEX = "S: 220 mx.correo.example ESMTP\nC: RCPT TO:<ana@correo.example>\nS: 250 2.1.5 Ok"


def claims(**changes: object) -> CertificateClaims:
    values: dict[str, object] = {
        "recipient": "ana@correo.example",
        "subject": SUBJECT,
        "sent_at": SENT,
        "delivered_at": DELIVERED,
        "text": ANNEX,
    }
    values.update(changes)
    return CertificateClaims(**values)  # type: ignore[arg-type]


def email(**changes: object) -> EmailContext:
    values: dict[str, object] = {
        "subject": f"Correo certificado: {SUBJECT}",
        "date": DELIVERED + timedelta(minutes=2),
        "certificate_count": 1,
    }
    values.update(changes)
    return EmailContext(**values)  # type: ignore[arg-type]


def problems(
    certificate: CertificateClaims, context: EmailContext, signed_at: datetime | None = None
) -> list[str]:
    return certificate_problems(certificate, context, signed_at, rules_for(lleida_profile()))


def test_consistent_certificate_has_no_problem() -> None:
    assert problems(claims(), email(), DELIVERED + timedelta(minutes=1)) == []


def test_send_after_delivery_found() -> None:
    found = problems(claims(sent_at=DELIVERED + timedelta(hours=1)), email())

    assert len(found) == 1
    assert "is after the delivery time" in found[0]


def test_email_dated_before_delivery_found() -> None:
    found = problems(claims(), email(date=DELIVERED - timedelta(days=1)))

    assert len(found) == 1
    assert "before the delivery it reports" in found[0]


def test_signature_before_delivery_found() -> None:
    found = problems(claims(), email(), DELIVERED - timedelta(hours=2))

    assert len(found) == 1
    assert "signed at" in found[0]


def test_clock_skew_tolerated() -> None:
    assert problems(claims(), email(date=DELIVERED - timedelta(minutes=5))) == []


def test_subject_of_other_send_found() -> None:
    found = problems(claims(), email(subject="Correo certificado: Carta de cobro negocio 2000"))

    assert len(found) == 1
    assert "names another send" in found[0]


def test_cut_email_subject_accepted() -> None:
    assert problems(claims(), email(subject="Correo certificado: Estado de cuenta negocio")) == []


def test_subject_without_prefix_not_compared() -> None:
    assert problems(claims(), email(subject="Su certificado")) == []


def test_subject_not_compared_for_several_certificates() -> None:
    context = email(subject="Correo certificado: otro asunto", certificate_count=2)

    assert problems(claims(), context) == []


def test_recipient_missing_from_annex_found() -> None:
    found = problems(claims(recipient="luis@correo.example"), email())

    assert len(found) == 1
    assert "is not in its technical annex" in found[0]


def test_annex_without_rcpt_not_compared() -> None:
    assert problems(claims(text="Anexo técnico"), email()) == []
