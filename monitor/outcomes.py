"""The outcomes of reading a message: its class, evidence kinds, check results and verdicts.

They live apart from the tables in ``monitor.models``, so the reader workers, which return
them, import no database library.
"""

from enum import StrEnum


class MessageClass(StrEnum):
    """What a stored message turned out to be."""

    EVIDENCE = "evidence"
    UNRELATED = "unrelated"
    QUARANTINED = "quarantined"


class EvidenceKind(StrEnum):
    """What a piece of evidence says happened to one send and recipient."""

    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    REJECTED = "rejected"


class CheckResult(StrEnum):
    """The outcome of one authenticity check on one piece of evidence."""

    PASS = "pass"  # noqa: S105 - a check result, not a password
    FAIL = "fail"
    NONE = "none"  # nothing to check: the message or PDF carries no signature
    OFF = "off"  # the provider's policy turns the check off
    NOT_APPLICABLE = "not_applicable"  # a notice without a PDF has no PDF signature


class TrustVerdict(StrEnum):
    """Whether evidence may count, after its checks were judged by the provider's policy."""

    VERIFIED = "verified"  # every check that ran passed
    WARNING = "warning"  # a check failed under the warn policy; the evidence still counts
    UNVERIFIED = "unverified"  # a check failed under the require policy; it never counts
    UNCHECKED = "unchecked"  # the policy turned every check off
