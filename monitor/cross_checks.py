"""Consistency of a certificate with the email it came in, and with its own technical annex.

A genuine certificate pasted into another email, or a certificate whose first page was edited,
shows up as a disagreement here even when each part alone looks valid. Each rule only fires
when both sides print the value it compares, since the provider's email format is not
published:

- the send time is not after the delivery time;
- the evidence email and the PDF signature are not dated before the delivery they report;
- an email subject that quotes the original one (it carries a subject prefix of the profile,
  as ``Correo certificado: <subject>`` does) names the certificate's subject, when the email
  carries one certificate;
- a technical annex that lists ``RCPT TO`` addresses lists the certificate's recipient.

The send that the evidence is matched to is checked in ``reconcile.matching``.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.provider import ProviderRules

# How far apart the provider's, the TSA's and the mail servers' clocks may be.
CLOCK_SKEW = timedelta(minutes=15)
_RCPT_TO = re.compile(r"RCPT\s+TO:\s*<([^<>\s]+)>", re.IGNORECASE)


@dataclass(frozen=True)
class CertificateClaims:
    """The values a certificate prints that the cross-checks compare."""

    recipient: str | None
    subject: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    text: str


@dataclass(frozen=True)
class EmailContext:
    """The headers of the evidence email around the certificate."""

    subject: str | None
    date: datetime | None
    certificate_count: int


def certificate_problems(
    claims: CertificateClaims,
    email: EmailContext,
    signed_at: datetime | None,
    rules: ProviderRules,
) -> list[str]:
    """Return each disagreement between a certificate, its email and its signature time."""
    problems = _time_problems(claims, email, signed_at)
    problems.extend(_subject_problems(claims, email, rules))
    problems.extend(_annex_problems(claims))
    return problems


def _time_problems(
    claims: CertificateClaims, email: EmailContext, signed_at: datetime | None
) -> list[str]:
    problems: list[str] = []
    sent, delivered = claims.sent_at, claims.delivered_at
    if sent is not None and delivered is not None and sent > delivered + CLOCK_SKEW:
        problems.append(
            f"the send time {sent.isoformat()} is after the delivery time {delivered.isoformat()}"
        )

    reported = delivered or sent
    if reported is None:
        return problems
    if email.date is not None and email.date < reported - CLOCK_SKEW:
        problems.append(
            f"the evidence email is dated {email.date.isoformat()}, before the delivery it "
            f"reports at {reported.isoformat()}"
        )
    if signed_at is not None and signed_at < reported - CLOCK_SKEW:
        problems.append(
            f"the PDF was signed at {signed_at.isoformat()}, before the delivery it reports "
            f"at {reported.isoformat()}"
        )
    return problems


def _subject_problems(
    claims: CertificateClaims, email: EmailContext, rules: ProviderRules
) -> list[str]:
    if email.certificate_count != 1 or not email.subject or not claims.subject:
        return []
    if not rules.has_subject_prefix(email.subject):
        return []

    quoted = rules.normalize_subject(email.subject)
    printed = rules.normalize_subject(claims.subject)
    # Mail software may cut a long subject, so either may be the start of the other.
    if not quoted or quoted.startswith(printed) or printed.startswith(quoted):
        return []
    return [
        f"the email's subject {email.subject!r} names another send than the certificate's "
        f"subject {claims.subject!r}"
    ]


def _annex_problems(claims: CertificateClaims) -> list[str]:
    annex_recipients = {address.lower() for address in _RCPT_TO.findall(claims.text)}
    if not annex_recipients or claims.recipient is None:
        return []
    if claims.recipient.lower() in annex_recipients:
        return []
    listed = ", ".join(sorted(annex_recipients))
    return [
        f"the certificate's recipient {claims.recipient} is not in its technical annex "
        f"(RCPT TO {listed})"
    ]
