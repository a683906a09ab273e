"""The trust roots of a provider: the CA certificates that a certificate PDF's signature must
chain to, loaded from the PEM or DER files that ``trust_roots`` names.

Loading them takes only asn1crypto, so the ingest process checks the files before it hands
a message to a reader worker, without importing pyHanko.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from config.errors import ConfigError
from config.i18n import _
from config.provider_settings import ProfileCache, ProviderProfile


class TrustRootError(ConfigError):
    """A file named in a provider's ``trust_roots`` cannot be read as PEM or DER certificates."""


@dataclass(frozen=True)
class SignatureTrust:
    """The requirements a certificate PDF's signature must meet for one provider: its roots,
    its signer pattern and whether it needs a timestamp."""

    roots: tuple[asn1_x509.Certificate, ...]
    signer_pattern: re.Pattern[str] | None
    require_timestamp: bool

    @classmethod
    def from_profile(cls, profile: ProviderProfile) -> "SignatureTrust":
        """Load the trust roots of ``profile``; raise TrustRootError for an unreadable file."""
        roots = tuple(cert for path in profile.trust_roots for cert in _load_roots(path))
        pattern = re.compile(profile.signer_pattern) if profile.signer_pattern else None
        return cls(roots, pattern, profile.require_timestamp)


_trusts = ProfileCache(SignatureTrust.from_profile)


def signature_trust_for(profile: ProviderProfile) -> SignatureTrust:
    """Return the signature trust of ``profile``, loading its trust roots on first use.

    Raises TrustRootError for an unreadable file.
    """
    return _trusts.get(profile)


def _load_roots(path: Path) -> list[asn1_x509.Certificate]:
    try:
        certificates = certificates_in(path.read_bytes())
    except (OSError, ValueError) as exc:
        message = _(
            "Cannot read the trust root file {path}: {error}. Check trust_roots in the "
            "provider's section: each entry must name a PEM or DER certificate file."
        ).format(path=path, error=exc)
        raise TrustRootError(message, key="providers.trust_roots") from exc
    if not certificates:
        message = _(
            "The trust root file {path} contains no certificate. Check trust_roots in the "
            "provider's section: each entry must name a PEM or DER certificate file."
        ).format(path=path)
        raise TrustRootError(message, key="providers.trust_roots")
    return certificates


def certificates_in(data: bytes) -> list[asn1_x509.Certificate]:
    """Parse every certificate block of PEM ``data``, or ``data`` as one DER certificate.

    Blocks of other types, such as a private key, are skipped. This is what
    ``pyhanko.keys.load_certs_from_pemder`` does (pyHanko 0.38). Raises ValueError for data
    that is neither.
    """
    if not pem.detect(data):
        return [asn1_x509.Certificate.load(data)]
    return [
        asn1_x509.Certificate.load(der)
        for type_name, _headers, der in pem.unarmor(data, multiple=True)
        if type_name is None or type_name.lower() == "certificate"
    ]
