"""The Trust stage: run the authenticity checks on evidence and judge them by the provider's policy.

Three checks apply to each piece of evidence: DKIM of the provider message that carried it
(``monitor.dkim_check``), the signature of its certificate PDF (``monitor.pdf_signature``)
and the cross-checks of the certificate against its email (``monitor.cross_checks``). A
notice without a PDF has no signature to check. ``verify_dkim`` and ``verify_signature`` set
the policy of the first two, and the cross-checks follow the stricter of the two.

The verdict is UNVERIFIED when a check under ``require`` failed or found no signature, so the
evidence never certifies a send. It is WARNING when only checks under ``warn`` did, UNCHECKED
when every check is off, and VERIFIED otherwise.
"""

from config.provider_settings import ProfileCache, ProviderProfile, VerifyPolicy
from monitor.dkim_check import DkimKeys, verify_dkim
from monitor.outcomes import CheckResult, TrustVerdict
from monitor.pdf_signature import verify_pdf_signature
from monitor.reading_results import Authenticity, DkimVerdict, SignatureVerdict
from monitor.trust_roots import signature_trust_for

_FAILED = frozenset({CheckResult.FAIL, CheckResult.NONE})
_POLICY_ORDER = (VerifyPolicy.OFF, VerifyPolicy.WARN, VerifyPolicy.REQUIRE)


class TrustContext:
    """The loaded trust material and the policies of one provider profile."""

    def __init__(self, profile: ProviderProfile) -> None:
        self.dkim_policy = profile.dkim_policy
        self.signature_policy = profile.signature_policy
        self.cross_check_policy = max(
            self.dkim_policy, self.signature_policy, key=_POLICY_ORDER.index
        )
        self.keys = DkimKeys.from_profile(profile)
        self.signature_trust = signature_trust_for(profile)

    def check_dkim(self, raw: bytes, from_address: str | None) -> DkimVerdict:
        """Verify the DKIM signature of the provider message ``raw``, unless the policy is off."""
        if self.dkim_policy is VerifyPolicy.OFF:
            return DkimVerdict(CheckResult.OFF)
        return verify_dkim(raw, from_address, self.keys)

    def check_signature(self, pdf: bytes | None) -> SignatureVerdict:
        """Validate the signature of a certificate PDF; a notice has none to validate."""
        if pdf is None:
            return SignatureVerdict(CheckResult.NOT_APPLICABLE)
        if self.signature_policy is VerifyPolicy.OFF:
            return SignatureVerdict(CheckResult.OFF)
        return verify_pdf_signature(pdf, self.signature_trust)

    def judge(
        self, dkim: DkimVerdict, signature: SignatureVerdict, cross_problems: list[str]
    ) -> Authenticity:
        """Combine the three checks into a verdict under this provider's policies."""
        cross_result = CheckResult.FAIL if cross_problems else CheckResult.PASS
        if self.cross_check_policy is VerifyPolicy.OFF:
            cross_result = CheckResult.OFF
        checks = [
            (self.dkim_policy, dkim.result, _labelled("DKIM", dkim.reasons)),
            (
                self.signature_policy,
                signature.result,
                _labelled("PDF signature", signature.reasons),
            ),
            (self.cross_check_policy, cross_result, _labelled("cross-check", cross_problems)),
        ]
        verdict, reasons = _verdict(checks)
        return Authenticity(dkim, signature, cross_result, verdict, reasons)


def _labelled(check: str, reasons: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(f"{check}: {reason}" for reason in reasons)


def _verdict(
    checks: list[tuple[VerifyPolicy, CheckResult, tuple[str, ...]]],
) -> tuple[TrustVerdict, tuple[str, ...]]:
    ran = [
        check
        for check in checks
        if check[0] is not VerifyPolicy.OFF and check[1] is not CheckResult.NOT_APPLICABLE
    ]
    if not ran:
        return TrustVerdict.UNCHECKED, ()

    failed = [check for check in ran if check[1] in _FAILED]
    reasons = tuple(reason for check in failed for reason in check[2])
    if any(policy is VerifyPolicy.REQUIRE for policy, _result, _reasons in failed):
        return TrustVerdict.UNVERIFIED, reasons
    if failed:
        return TrustVerdict.WARNING, reasons
    return TrustVerdict.VERIFIED, ()


_contexts = ProfileCache(TrustContext)


def trust_context_for(profile: ProviderProfile) -> TrustContext:
    """Return the trust context of ``profile``, loading its trust roots on first use.

    Raises monitor.trust_roots.TrustRootError when a trust root file cannot be read.
    """
    return _contexts.get(profile)
