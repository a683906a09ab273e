"""DKIM verification of a provider message (RFC 6376), with dkimpy.

A message passes when at least one of its DKIM-Signature headers

1. names a signing domain (``d=``) equal to the From domain or a parent of it, with at least
   two labels, so a signature by ``lleida.net`` covers ``certificado.lleida.net``;
2. has no ``l=`` body-length tag, because a signature that covers only the start of the body
   lets anyone append text or attachments to it;
3. verifies with the key of ``s=._domainkey.d=``.

Keys come first from the provider's pinned ``dkim_keys``, then, unless ``dkim_dns`` is off,
from DNS with ``dns_timeout`` for each lookup. The result is NONE for a message without any
DKIM-Signature header, PASS, or FAIL with the reason of every signature tried.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import dkim
from dkim.dnsplug import get_txt
from dkim.util import InvalidTagValueList, parse_tag_value

from config.i18n import N_
from config.provider_settings import ProviderProfile
from monitor.outcomes import CheckResult
from monitor.provider import address_domain
from monitor.reading_results import DkimVerdict

log = logging.getLogger(__name__)

# dkimpy logs every failed signature at ERROR level; the reasons are returned here instead.
_QUIET = logging.getLogger(f"{__name__}.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass
class DkimKeys:
    """Where key records come from: pinned records by DNS name, then DNS if allowed."""

    pinned: dict[str, str]
    use_dns: bool
    timeout: float
    lookup_dns: Callable[..., bytes | None] = get_txt
    failures: list[str] = field(default_factory=list)

    @classmethod
    def from_profile(cls, profile: ProviderProfile) -> "DkimKeys":
        return cls(
            pinned=dict(profile.dkim_keys),
            use_dns=profile.dkim_dns,
            timeout=profile.dns_timeout.total_seconds(),
        )

    def lookup(self, name: bytes, timeout: float = 5) -> bytes | None:
        """Return the TXT record of ``name``, as dkimpy's ``dnsfunc`` must."""
        text = name.decode("ascii", "replace").rstrip(".").lower()
        record = self.pinned.get(text)
        if record is not None:
            return record.encode("ascii")
        if not self.use_dns:
            self.failures.append(f"no pinned key for {text} and DNS lookups are off")
            return None
        try:
            found = self.lookup_dns(name, timeout=self.timeout)
        except dkim.DnsTimeoutError as exc:
            self.failures.append(f"DNS lookup of {text} timed out: {exc}")
            return None
        if found is None:
            self.failures.append(f"no DKIM key record at {text}")
        return found


def verify_dkim(raw: bytes, from_address: str | None, keys: DkimKeys) -> DkimVerdict:
    """Verify the DKIM signatures of ``raw`` for the domain of ``from_address``."""
    from_domain = address_domain(from_address) if from_address else None
    try:
        verifier = dkim.DKIM(raw, logger=_QUIET)
    except dkim.DKIMException as exc:
        return DkimVerdict(CheckResult.FAIL, reasons=(f"message cannot be read: {exc}",))

    headers = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    if not headers:
        return DkimVerdict(CheckResult.NONE, reasons=(N_("the message has no DKIM signature"),))

    reasons: list[str] = []
    first: tuple[str | None, str | None] = (None, None)
    for index, header in enumerate(headers):
        domain, selector, problem = _check_signature(verifier, index, header, from_domain, keys)
        if index == 0:
            first = (domain, selector)
        if problem is None:
            return DkimVerdict(CheckResult.PASS, domain, selector)
        reasons.append(problem)
    return DkimVerdict(CheckResult.FAIL, first[0], first[1], tuple(reasons))


def _check_signature(
    verifier: dkim.DKIM, index: int, header: bytes, from_domain: str | None, keys: DkimKeys
) -> tuple[str | None, str | None, str | None]:
    """Return (domain, selector, problem) for one signature; problem is None when it passes."""
    try:
        tags = parse_tag_value(header)
    except InvalidTagValueList as exc:
        return None, None, f"signature {index + 1} is malformed: {exc}"

    domain = _tag(tags, b"d")
    selector = _tag(tags, b"s")
    label = f"signature {index + 1} (d={domain}, s={selector})"
    if b"l" in tags:
        return domain, selector, f"{label} has an l= tag and covers only part of the body"
    if not _aligned(domain, from_domain):
        return domain, selector, f"{label} is not aligned with the From domain {from_domain}"

    keys.failures.clear()
    try:
        verified = verifier.verify(idx=index, dnsfunc=keys.lookup)
    except dkim.DKIMException as exc:
        return domain, selector, f"{label} does not verify: {exc}"
    if verified:
        return domain, selector, None
    detail = "; ".join(keys.failures) or "the signature does not match the message"
    return domain, selector, f"{label} does not verify: {detail}"


def _tag(tags: dict[bytes, bytes], name: bytes) -> str | None:
    value = tags.get(name)
    if value is None:
        return None
    return value.decode("ascii", "replace").strip().lower().rstrip(".") or None


def _aligned(signing_domain: str | None, from_domain: str | None) -> bool:
    """Return whether the signing domain is the From domain or one of its parents."""
    if not signing_domain or not from_domain or "." not in signing_domain:
        return False
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)
