"""A provider profile compiled for reading: sender check, subject folding and pattern tests.

``ProviderProfile`` is data (a TOML file). ``rules_for`` compiles its regular expressions and
its certificate labels once per profile object and keeps the result, so reading a message
costs no compilation. ``normalize_subject`` is the one definition of "the same subject" that
both reading and matching use.
"""

import re
import unicodedata
from collections.abc import Iterable
from email.utils import getaddresses
from enum import StrEnum
from zoneinfo import ZoneInfo

from config.provider_settings import ProfileCache, ProviderLabels, ProviderProfile

# A domain acuse accepts as a provider's: ASCII letters, digits and hyphens in dot-separated
# labels. Anything else (Unicode look-alikes, full-width dots) is never the provider.
_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ASCII_DOMAIN = re.compile(rf"^{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+$")
_WHITESPACE = re.compile(r"\s+")
_TYPOGRAPHIC_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_MAX_PREFIX_ROUNDS = 32


class LabelField(StrEnum):
    """A field the certificate or notice prints after a label; values name ProviderLabels."""

    CERTIFICATE_ID = "certificate_id"
    SENDER = "sender"
    RECIPIENT = "recipient"
    SUBJECT = "subject"
    MESSAGE_ID = "message_id"
    SENT_AT = "sent_at"
    DELIVERED_AT = "delivered_at"
    STATUS = "status"
    SMTP_DETAIL = "smtp_detail"
    CONTENT_HASH = "content_hash"
    REASON = "reason"


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace with one space and strip both ends."""
    # Printable text has no whitespace but the ASCII space, so without a double space only
    # the ends can change. Most subjects take this path, which skips the regular expression.
    if text.isprintable() and "  " not in text:
        return text.strip()
    return _WHITESPACE.sub(" ", text).strip()


def fold_text(text: str) -> str:
    """Fold ``text`` for comparison: no accents, casefolded, one space between words.

    Typographic apostrophes (U+2019 and its kin) become ``'``, as in ``d'entrega``.
    """
    if text.isascii():
        # No accents or typographic apostrophes to remove, and NFKD leaves ASCII unchanged.
        return collapse_whitespace(text.casefold())
    decomposed = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHIC_APOSTROPHES))
    without_marks = "".join(char for char in decomposed if not unicodedata.combining(char))
    return collapse_whitespace(without_marks.casefold())


def fold_label(label: str) -> str:
    """Fold a label for comparison: like ``fold_text``, without a trailing colon."""
    return fold_text(label).rstrip(":").rstrip()


def address_domain(address: str) -> str | None:
    """Return the lowercased domain of the one address in ``address``, or None.

    ``address`` is a bare address or a header value such as ``Name <user@host>``. A value
    with no address, several addresses or a domain that is not plain ASCII returns None.
    """
    addresses = [addr for _name, addr in getaddresses([address]) if addr]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None

    domain = addresses[0].rsplit("@", 1)[1].strip().rstrip(".").lower()
    if not _ASCII_DOMAIN.match(domain):
        return None
    return domain


def _compile_all(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


def _label_index(labels: ProviderLabels) -> dict[str, LabelField]:
    """Map each folded label to its field; the first field that lists a label keeps it."""
    index: dict[str, LabelField] = {}
    for name in ProviderLabels.model_fields:
        field = LabelField(name)
        for label in getattr(labels, name):
            index.setdefault(fold_label(label), field)
    return index


class ProviderRules:
    """The compiled form of one ``ProviderProfile``; build it with ``rules_for``."""

    def __init__(self, profile: ProviderProfile) -> None:
        self.profile = profile
        self.name = profile.name
        self.timezone = ZoneInfo(profile.timezone)
        self._sender_domains = tuple(profile.sender_domains)
        self._ignore = _compile_all(profile.ignore_subject_patterns)
        self._rejection = _compile_all(profile.rejection_patterns)
        self._failure = _compile_all(profile.failure_patterns)
        self._prefixes = _compile_all(profile.subject_prefixes)
        self._labels = _label_index(profile.labels)

    def is_provider_sender(self, address: str | None) -> bool:
        """Return whether ``address`` is under one of the provider's sender domains.

        The domain must equal a sender domain or be a subdomain of one, so
        ``lleida.net.evil.example`` and ``lleida-net.example`` are not ``lleida.net``.
        """
        if not address:
            return False

        domain = address_domain(address)
        if domain is None:
            return False
        return any(
            domain == known or domain.endswith("." + known) for known in self._sender_domains
        )

    def strip_subject_prefixes(self, subject: str) -> str:
        """Remove the profile's subject prefixes from the start of ``subject``, repeatedly.

        Case and accents are kept, and whitespace runs become one space.
        """
        text = collapse_whitespace(subject)
        for _round in range(_MAX_PREFIX_ROUNDS):
            stripped = self._strip_one_prefix(text)
            if stripped == text:
                break
            text = stripped
        return text

    def _strip_one_prefix(self, text: str) -> str:
        for pattern in self._prefixes:
            match = pattern.match(text)
            if match is not None and match.end() > 0:
                return text[match.end() :].lstrip()
        return text

    def has_subject_prefix(self, subject: str) -> bool:
        """Return whether ``subject`` starts with one of the profile's subject prefixes."""
        return self.strip_subject_prefixes(subject) != collapse_whitespace(subject)

    def normalize_subject(self, subject: str) -> str:
        """Return ``subject`` without the profile's prefixes, casefolded and without accents."""
        return fold_text(self.strip_subject_prefixes(subject))

    def is_ignored(self, subject: str) -> bool:
        """Return whether a provider message with this subject is not evidence (an invoice)."""
        return any(pattern.search(subject) for pattern in self._ignore)

    def is_rejection(self, text: str) -> bool:
        """Return whether ``text`` reads as a notice that a send was not certified."""
        return any(pattern.search(text) for pattern in self._rejection)

    def rejection_line(self, text: str) -> str | None:
        """Return the first line of ``text`` that matches a rejection pattern, or None."""
        for line in text.splitlines():
            if self.is_rejection(line):
                return collapse_whitespace(line)
        return None

    def is_failure(self, text: str) -> bool:
        """Return whether a certificate's status or delivery text records a failed delivery."""
        return any(pattern.search(text) for pattern in self._failure)

    def label_field(self, label: str) -> LabelField | None:
        """Return the field that ``label`` names, compared without case, accents or colon."""
        return self._labels.get(fold_label(label))


_rules = ProfileCache(ProviderRules)


def rules_for(profile: ProviderProfile) -> ProviderRules:
    """Return the compiled rules of ``profile``, compiling them on first use."""
    return _rules.get(profile)


def normalize_subject(subject: str, profile: ProviderProfile) -> str:
    """Return ``subject`` as matching compares it: see ``ProviderRules.normalize_subject``."""
    return rules_for(profile).normalize_subject(subject)
