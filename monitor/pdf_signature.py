"""Validation of a certificate PDF's signature with pyHanko, against the provider's trust roots.

The last signature of the document (not a document timestamp) is validated. It passes when

1. the signed bytes are intact and the signature value matches the signer's key;
2. it covers the whole file, or only long-term-validation data (a document security store, a
   document timestamp) was appended after it, so no later incremental update adds content;
3. the signer certificate chains to one of ``trust_roots``;
4. the signer's subject, written as RFC 4514 (``CN=...,O=...,C=ES``), matches
   ``signer_pattern`` when one is configured;
5. with ``require_timestamp``, a signature timestamp is present, intact and issued by a TSA
   that chains to ``trust_roots``.

No certificate, CRL or OCSP response is fetched from the network; revocation is checked only
with what the PDF embeds, and missing revocation data is not a failure.
NOTE: the signer's chain is judged at the time of validation, so evidence whose signing
certificate has expired since then fails on a later reprocess.
"""

import io
import logging
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from config.i18n import N_
from monitor.outcomes import CheckResult
from monitor.reading_results import SignatureVerdict
from monitor.trust_roots import SignatureTrust

log = logging.getLogger(__name__)

_ACCEPTED_LATER_CHANGES = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)
# Providers sign with either usage; pyHanko's default demands non-repudiation alone.
_SIGNER_KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)


def verify_pdf_signature(data: bytes, trust: SignatureTrust) -> SignatureVerdict:
    """Validate the last signature of the PDF ``data``; see the module docstring."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = [sig for sig in reader.embedded_signatures if sig.sig_object_type == "/Sig"]
    except MemoryError:
        raise
    except Exception as exc:  # pyHanko raises many types on a damaged file, as pypdf does
        return _failed(f"the PDF cannot be read for its signature: {_describe(exc)}")
    if not signatures:
        return SignatureVerdict(CheckResult.NONE, reasons=(N_("the PDF carries no signature"),))

    try:
        status = validate_pdf_signature(
            signatures[-1], _validation_context(trust), key_usage_settings=_SIGNER_KEY_USAGE
        )
    except MemoryError:
        raise
    except Exception as exc:  # a malformed signature dictionary or CMS structure
        return _failed(f"the signature cannot be validated: {_describe(exc)}")

    signer = subject_text(status.signing_cert)
    problems = _problems(status, signer, trust)
    result = CheckResult.FAIL if problems else CheckResult.PASS
    return SignatureVerdict(result, signer, _signed_at(status), tuple(problems))


def _validation_context(trust: SignatureTrust) -> ValidationContext:
    # An explicit, possibly empty, list of roots: pyHanko must never fall back to the
    # operating system's TLS trust store.
    return ValidationContext(
        trust_roots=list(trust.roots), allow_fetching=False, revocation_mode="soft-fail"
    )


def _problems(status: PdfSignatureStatus, signer: str, trust: SignatureTrust) -> list[str]:
    problems: list[str] = []
    if not status.intact:
        problems.append("the signed bytes were changed after signing")
    if not status.valid:
        problems.append("the signature value does not match the signer's key")
    if not _covers_content(status):
        problems.append("content was added to the PDF after it was signed")
    problems.extend(_trust_problems(status, signer, trust))
    problems.extend(_timestamp_problems(status, trust))
    return problems


def _covers_content(status: PdfSignatureStatus) -> bool:
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return True
    return (
        status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
        and status.modification_level in _ACCEPTED_LATER_CHANGES
    )


def _trust_problems(status: PdfSignatureStatus, signer: str, trust: SignatureTrust) -> list[str]:
    problems: list[str] = []
    if not trust.roots:
        problems.append("no trust_roots are configured, so the signer cannot be trusted")
    elif not status.trusted:
        indication = status.trust_problem_indic
        detail = f" ({getattr(indication, 'name', indication)})" if indication is not None else ""
        problems.append(f"the signer {signer} does not chain to a trust root{detail}")
    if trust.signer_pattern is not None and not trust.signer_pattern.search(signer):
        problems.append(f"the signer {signer} does not match signer_pattern")
    return problems


def _timestamp_problems(status: PdfSignatureStatus, trust: SignatureTrust) -> list[str]:
    if not trust.require_timestamp:
        return []
    timestamp = status.timestamp_validity
    if timestamp is None:
        return ["the signature has no timestamp"]
    if not (timestamp.intact and timestamp.valid):
        return ["the signature's timestamp is damaged"]
    if not timestamp.trusted:
        tsa = subject_text(timestamp.signing_cert)
        return [f"the timestamp authority {tsa} does not chain to a trust root"]
    return []


def _signed_at(status: PdfSignatureStatus) -> datetime | None:
    timestamp = status.timestamp_validity
    if timestamp is not None and timestamp.intact and timestamp.valid and timestamp.trusted:
        return timestamp.timestamp
    return status.signer_reported_dt


def subject_text(certificate: asn1_x509.Certificate) -> str:
    """Return the certificate's subject in RFC 4514 form, as ``signer_pattern`` sees it."""
    return x509.load_der_x509_certificate(certificate.dump()).subject.rfc4514_string()


def _failed(reason: str) -> SignatureVerdict:
    return SignatureVerdict(CheckResult.FAIL, reasons=(reason,))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
