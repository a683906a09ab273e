"""The Trust stage through ``read_message``: every kind of forgery, genuine evidence, policies."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.provider_settings import ProviderProfile, VerifyPolicy
from monitor.models import CheckResult, MessageClass, TrustVerdict
from monitor.reading import read_message
from monitor.reading_results import MessageReading
from tests.evidence_factory import (
    CertificateFields,
    Packaging,
    append_content,
    dkim_sign,
    evidence_email,
    forwarded_email,
    lleida_profile,
    rejection_email,
    sign_certificate,
    sign_pdf,
    signed_evidence_email,
    signed_rejection_email,
)
from tests.trust_pki import invented_pki, trusted_profile

OTHER_DOMAIN = "correo-masivo.example"


@pytest.fixture
def profile(tmp_path: Path) -> ProviderProfile:
    other_record = f"acuse2026._domainkey.{OTHER_DOMAIN}"
    return trusted_profile(tmp_path, dkim_keys=_keys_with(other_record))


def _keys_with(name: str) -> dict[str, str]:
    record = invented_pki().dkim.record
    return {"acuse2026._domainkey.lleida.net": record, name: record}


def signed_with(transform: Callable[[bytes, CertificateFields], bytes], **options: Any) -> bytes:
    return dkim_sign(evidence_email(sign_pdf=transform, **options))


def altered_after_signing(pdf: bytes, fields: CertificateFields) -> bytes:
    return sign_certificate(pdf, fields).replace(b"/Helvetica", b"/Helvetico", 1)


def extended_after_signing(pdf: bytes, fields: CertificateFields) -> bytes:
    return append_content(sign_certificate(pdf, fields))


def signed_by_other_ca(pdf: bytes, fields: CertificateFields) -> bytes:
    return sign_pdf(pdf, signer=invented_pki().rogue_signer)


def signed_by_other_company(pdf: bytes, fields: CertificateFields) -> bytes:
    return sign_pdf(pdf, signer=invented_pki().other_signer)


def signed_without_timestamp(pdf: bytes, fields: CertificateFields) -> bytes:
    return sign_pdf(pdf, timestamp_at=None)


def signed_before_delivery(pdf: bytes, fields: CertificateFields) -> bytes:
    return sign_pdf(pdf, timestamp_at=fields.delivered_at - timedelta(days=1))


def unsigned_pdf(pdf: bytes, fields: CertificateFields) -> bytes:
    return pdf


FORGERIES: dict[str, Callable[[], bytes]] = {
    "no DKIM signature": lambda: evidence_email(sign_pdf=sign_certificate),
    "DKIM body altered": lambda: signed_evidence_email().replace(b"Estimado", b"Estimada"),
    "DKIM with l= tag": lambda: dkim_sign(
        evidence_email(sign_pdf=sign_certificate), body_length=True
    ),
    "DKIM of another domain": lambda: dkim_sign(
        evidence_email(sign_pdf=sign_certificate), domain=OTHER_DOMAIN
    ),
    "DKIM with forger's key": lambda: dkim_sign(
        evidence_email(sign_pdf=sign_certificate), key=invented_pki().rogue_dkim
    ),
    "PDF unsigned": lambda: signed_with(unsigned_pdf),
    "PDF altered after signing": lambda: signed_with(altered_after_signing),
    "PDF extended after signing": lambda: signed_with(extended_after_signing),
    "PDF signed under another CA": lambda: signed_with(signed_by_other_ca),
    "PDF signed by another company": lambda: signed_with(signed_by_other_company),
    "PDF without timestamp": lambda: signed_with(signed_without_timestamp),
    "PDF signed before the delivery": lambda: signed_with(signed_before_delivery),
    "certificate in another send's email": lambda: signed_with(
        sign_certificate, subject="Correo certificado: Carta de cobro negocio 2000"
    ),
    "rejection without DKIM": rejection_email,
}


def read(raw: bytes, profile: ProviderProfile) -> MessageReading:
    return read_message(raw, profile)


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forgery_unverified(forgery: str, profile: ProviderProfile) -> None:
    reading = read(FORGERIES[forgery](), profile)

    assert reading.classification is MessageClass.EVIDENCE
    authenticity = reading.evidence[0].authenticity
    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.UNVERIFIED
    assert authenticity.reasons


def test_genuine_certificate_verified(profile: ProviderProfile) -> None:
    reading = read(signed_evidence_email(), profile)

    authenticity = reading.evidence[0].authenticity
    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.VERIFIED
    assert authenticity.dkim.result is CheckResult.PASS
    assert authenticity.signature.result is CheckResult.PASS
    assert authenticity.cross_check is CheckResult.PASS


def test_genuine_certificates_in_one_message_verified(profile: ProviderProfile) -> None:
    second = CertificateFields(
        certificate_id="LLD-20260302-000124", recipient="luis.ortega@correo.example"
    )

    reading = read(signed_evidence_email([CertificateFields(), second]), profile)

    verdicts = [record.authenticity.verdict for record in reading.evidence if record.authenticity]
    assert verdicts == [TrustVerdict.VERIFIED, TrustVerdict.VERIFIED]


def test_genuine_rejection_verified(profile: ProviderProfile) -> None:
    reading = read(signed_rejection_email(), profile)

    authenticity = reading.evidence[0].authenticity
    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.VERIFIED
    assert authenticity.signature.result is CheckResult.NOT_APPLICABLE


def test_forwarded_genuine_evidence_verified(profile: ProviderProfile) -> None:
    reading = read(forwarded_email(signed_evidence_email()), profile)

    authenticity = reading.evidence[0].authenticity
    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.VERIFIED


def test_embedded_certificate_signature_checked(profile: ProviderProfile) -> None:
    raw = dkim_sign(evidence_email(sign_pdf=sign_certificate, packaging=Packaging.EMBEDDED))

    authenticity = read(raw, profile).evidence[0].authenticity
    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.VERIFIED


def test_look_alike_sender_unrelated(tmp_path: Path) -> None:
    look_alike = "lleida-net.example"
    profile = trusted_profile(tmp_path, dkim_keys=_keys_with(f"acuse2026._domainkey.{look_alike}"))
    raw = dkim_sign(
        evidence_email(
            sign_pdf=sign_certificate, sender=f"Lleida.net <noreply@certificado.{look_alike}>"
        ),
        domain=look_alike,
    )

    reading = read(raw, profile)

    assert reading.classification is MessageClass.UNRELATED
    assert reading.evidence == ()


def test_warn_policy_counts_failed_evidence(tmp_path: Path) -> None:
    profile = trusted_profile(tmp_path, verify_dkim="warn", verify_signature="warn")

    authenticity = read(evidence_email(), profile).evidence[0].authenticity

    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.WARNING
    assert "DKIM: the message has no DKIM signature" in authenticity.reasons


def test_off_policy_runs_no_check(tmp_path: Path) -> None:
    profile = trusted_profile(tmp_path, verify_dkim="off", verify_signature="off")

    authenticity = read(evidence_email(), profile).evidence[0].authenticity

    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.UNCHECKED
    assert authenticity.dkim.result is CheckResult.OFF
    assert authenticity.signature.result is CheckResult.OFF
    assert authenticity.cross_check is CheckResult.OFF


def test_required_check_outweighs_warned_one(tmp_path: Path) -> None:
    profile = trusted_profile(tmp_path, verify_dkim="require", verify_signature="warn")

    authenticity = read(dkim_sign(evidence_email()), profile).evidence[0].authenticity

    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.WARNING
    assert authenticity.dkim.result is CheckResult.PASS


def test_default_policy_warns_without_roots() -> None:
    profile = lleida_profile()

    assert profile.dkim_policy is VerifyPolicy.WARN
    assert profile.signature_policy is VerifyPolicy.WARN


def test_default_policy_requires_with_roots(tmp_path: Path) -> None:
    profile = trusted_profile(tmp_path)

    assert profile.dkim_policy is VerifyPolicy.REQUIRE
    assert profile.signature_policy is VerifyPolicy.REQUIRE


def test_unsigned_demo_evidence_warned() -> None:
    authenticity = read(evidence_email(), lleida_profile()).evidence[0].authenticity

    assert authenticity is not None
    assert authenticity.verdict is TrustVerdict.WARNING
