"""DKIM verification with pinned keys: alignment, the l= tag, altered messages, key lookups."""

import dkim
import pytest

from monitor.dkim_check import DkimKeys, verify_dkim
from monitor.models import CheckResult
from tests.evidence_factory import PROVIDER_FROM, dkim_sign, evidence_email
from tests.trust_pki import DKIM_RECORD_NAME, DKIM_SELECTOR, invented_pki

FROM = "noreply@certificado.lleida.net"


def pinned_keys(**records: str) -> DkimKeys:
    pinned = {DKIM_RECORD_NAME: invented_pki().dkim.record, **records}
    return DkimKeys(pinned=pinned, use_dns=False, timeout=1.0)


def test_signature_by_parent_domain_passes() -> None:
    raw = dkim_sign(evidence_email())

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.PASS
    assert verdict.domain == "lleida.net"
    assert verdict.selector == DKIM_SELECTOR


def test_signature_by_from_domain_passes() -> None:
    record = "acuse2026._domainkey.certificado.lleida.net"
    raw = dkim_sign(evidence_email(), domain="certificado.lleida.net")

    verdict = verify_dkim(raw, FROM, pinned_keys(**{record: invented_pki().dkim.record}))

    assert verdict.result is CheckResult.PASS


def test_unsigned_message_is_none() -> None:
    verdict = verify_dkim(evidence_email(), FROM, pinned_keys())

    assert verdict.result is CheckResult.NONE


def test_altered_body_fails() -> None:
    raw = dkim_sign(evidence_email()).replace(b"Estimado cliente", b"Estimada clienta")

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.FAIL
    assert "body hash mismatch" in verdict.reasons[0]


def test_altered_subject_fails() -> None:
    raw = dkim_sign(evidence_email()).replace(b"Subject: ", b"Subject: RE: ", 1)

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.FAIL


def test_body_length_tag_fails() -> None:
    raw = dkim_sign(evidence_email(), body_length=True)

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.FAIL
    assert "l= tag" in verdict.reasons[0]


def test_unaligned_domain_fails() -> None:
    record = "acuse2026._domainkey.correo-masivo.example"
    raw = dkim_sign(evidence_email(), domain="correo-masivo.example")

    verdict = verify_dkim(raw, FROM, pinned_keys(**{record: invented_pki().dkim.record}))

    assert verdict.result is CheckResult.FAIL
    assert "not aligned" in verdict.reasons[0]


def test_top_level_domain_never_aligned() -> None:
    record = "acuse2026._domainkey.net"
    raw = dkim_sign(evidence_email(), domain="net")

    verdict = verify_dkim(raw, FROM, pinned_keys(**{record: invented_pki().dkim.record}))

    assert verdict.result is CheckResult.FAIL


def test_forger_key_fails() -> None:
    raw = dkim_sign(evidence_email(), key=invented_pki().rogue_dkim)

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.FAIL


def test_unpinned_selector_without_dns_fails() -> None:
    raw = dkim_sign(evidence_email(), selector="otro")

    verdict = verify_dkim(raw, FROM, pinned_keys())

    assert verdict.result is CheckResult.FAIL
    assert "no pinned key for otro._domainkey.lleida.net" in verdict.reasons[0]


def test_dns_timeout_named() -> None:
    def slow_dns(name: bytes, timeout: float = 5) -> bytes:
        raise dkim.DnsTimeoutError(f"no answer in {timeout} s")

    keys = DkimKeys(pinned={}, use_dns=True, timeout=0.5, lookup_dns=slow_dns)
    raw = dkim_sign(evidence_email())

    verdict = verify_dkim(raw, FROM, keys)

    assert verdict.result is CheckResult.FAIL
    assert "timed out" in verdict.reasons[0]


def test_dns_answer_used_when_not_pinned() -> None:
    asked: list[bytes] = []

    def dns(name: bytes, timeout: float = 5) -> bytes:
        asked.append(name)
        return invented_pki().dkim.record.encode()

    keys = DkimKeys(pinned={}, use_dns=True, timeout=0.5, lookup_dns=dns)

    verdict = verify_dkim(dkim_sign(evidence_email()), FROM, keys)

    assert verdict.result is CheckResult.PASS
    assert asked == [b"acuse2026._domainkey.lleida.net."]


def test_one_good_signature_among_bad_passes() -> None:
    signed = dkim_sign(evidence_email())
    twice = dkim_sign(signed, domain="correo-masivo.example")

    verdict = verify_dkim(twice, FROM, pinned_keys())

    assert verdict.result is CheckResult.PASS


def test_look_alike_from_domain_fails() -> None:
    raw = dkim_sign(evidence_email(sender="Lleida.net <noreply@lleida.net.correo.example>"))

    verdict = verify_dkim(raw, "noreply@lleida.net.correo.example", pinned_keys())

    assert verdict.result is CheckResult.FAIL


@pytest.mark.parametrize("raw", [b"", b"\x00\x01 not a message", b"DKIM-Signature: v=1; d\r\n\r\n"])
def test_garbage_never_raises(raw: bytes) -> None:
    verdict = verify_dkim(raw, PROVIDER_FROM, pinned_keys())

    assert verdict.result in (CheckResult.NONE, CheckResult.FAIL)
