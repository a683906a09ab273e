"""PDF signature validation with pyHanko against invented trust roots."""

import re
from pathlib import Path

import pytest

from monitor.models import CheckResult
from monitor.pdf_signature import verify_pdf_signature
from monitor.trust_roots import SignatureTrust, TrustRootError
from tests.evidence_factory import (
    DELIVERY_DELAY,
    SENT_AT,
    SIGNATURE_DELAY,
    CertificateFields,
    append_content,
    certificate_pdf,
    corrupt_pdf,
    sign_pdf,
)
from tests.trust_pki import SIGNER_PATTERN, invented_pki, trusted_profile


@pytest.fixture(scope="module")
def signed() -> bytes:
    return sign_pdf(certificate_pdf(CertificateFields()))


def trust(require_timestamp: bool = True, pattern: str | None = SIGNER_PATTERN) -> SignatureTrust:
    roots = (invented_pki().ca.asn1_certificate,)
    return SignatureTrust(roots, re.compile(pattern) if pattern else None, require_timestamp)


def test_genuine_signature_passes(signed: bytes) -> None:
    verdict = verify_pdf_signature(signed, trust())

    assert verdict.result is CheckResult.PASS
    assert verdict.reasons == ()


def test_signer_and_timestamp_recorded(signed: bytes) -> None:
    verdict = verify_pdf_signature(signed, trust())

    assert verdict.signer == "CN=Firma de certificados,O=Lleida Networks Pruebas,C=ES"
    assert verdict.signed_at == SENT_AT + DELIVERY_DELAY + SIGNATURE_DELAY


def test_unsigned_pdf_is_none() -> None:
    verdict = verify_pdf_signature(certificate_pdf(CertificateFields()), trust())

    assert verdict.result is CheckResult.NONE


def test_changed_byte_fails(signed: bytes) -> None:
    altered = signed.replace(b"/Helvetica", b"/Helvetico", 1)

    verdict = verify_pdf_signature(altered, trust())

    assert verdict.result is CheckResult.FAIL
    assert "changed after signing" in " ".join(verdict.reasons)


def test_appended_content_fails(signed: bytes) -> None:
    verdict = verify_pdf_signature(append_content(signed), trust())

    assert verdict.result is CheckResult.FAIL
    assert "added to the PDF after it was signed" in " ".join(verdict.reasons)


def test_other_ca_fails() -> None:
    forged = sign_pdf(certificate_pdf(CertificateFields()), signer=invented_pki().rogue_signer)

    verdict = verify_pdf_signature(forged, trust())

    assert verdict.result is CheckResult.FAIL
    assert "does not chain to a trust root" in " ".join(verdict.reasons)


def test_signer_outside_pattern_fails() -> None:
    other = sign_pdf(certificate_pdf(CertificateFields()), signer=invented_pki().other_signer)

    verdict = verify_pdf_signature(other, trust())

    assert verdict.result is CheckResult.FAIL
    assert "does not match signer_pattern" in " ".join(verdict.reasons)


def test_any_signer_without_pattern_passes() -> None:
    other = sign_pdf(certificate_pdf(CertificateFields()), signer=invented_pki().other_signer)

    verdict = verify_pdf_signature(other, trust(pattern=None))

    assert verdict.result is CheckResult.PASS


def test_missing_timestamp_fails_when_required() -> None:
    untimed = sign_pdf(certificate_pdf(CertificateFields()), timestamp_at=None)

    verdict = verify_pdf_signature(untimed, trust())

    assert verdict.result is CheckResult.FAIL
    assert "no timestamp" in " ".join(verdict.reasons)


def test_missing_timestamp_passes_when_optional() -> None:
    untimed = sign_pdf(certificate_pdf(CertificateFields()), timestamp_at=None)

    verdict = verify_pdf_signature(untimed, trust(require_timestamp=False))

    assert verdict.result is CheckResult.PASS


def test_untrusted_timestamp_authority_fails() -> None:
    pki = invented_pki()
    stamped = sign_pdf(certificate_pdf(CertificateFields()), tsa=pki.rogue_signer)

    verdict = verify_pdf_signature(stamped, trust())

    assert verdict.result is CheckResult.FAIL
    assert "timestamp" in " ".join(verdict.reasons)


def test_without_trust_roots_fails(signed: bytes) -> None:
    verdict = verify_pdf_signature(signed, SignatureTrust((), None, False))

    assert verdict.result is CheckResult.FAIL
    assert "no trust_roots are configured" in verdict.reasons[0]


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7\n%%EOF", corrupt_pdf()])
def test_damaged_pdf_never_raises(data: bytes) -> None:
    verdict = verify_pdf_signature(data, trust())

    assert verdict.result in (CheckResult.NONE, CheckResult.FAIL)


def test_trust_roots_loaded_from_profile(tmp_path: Path) -> None:
    loaded = SignatureTrust.from_profile(trusted_profile(tmp_path))

    assert [root.dump() for root in loaded.roots] == [invented_pki().ca.asn1_certificate.dump()]


def test_unreadable_trust_root_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"

    with pytest.raises(TrustRootError, match=r"missing-ca\.pem"):
        SignatureTrust.from_profile(trusted_profile(tmp_path, trust_roots=[str(missing)]))


def test_empty_trust_root_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")

    with pytest.raises(TrustRootError, match=r"empty\.pem"):
        SignatureTrust.from_profile(trusted_profile(tmp_path, trust_roots=[str(empty)]))
