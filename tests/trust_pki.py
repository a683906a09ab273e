"""Invented trust material for the authenticity tests: a CA, a signer, a TSA and DKIM keys.

Everything is generated once per test session with cryptography and never leaves the test
run. ``ca`` issues the provider's signing and time-stamping certificates; ``rogue_ca`` is a
second CA that no configuration trusts, for forgeries that look right but chain elsewhere.
The DKIM key signs as ``lleida.net`` with selector ``acuse2026``. ``rogue_dkim`` is another
key under the same name, the kind a forger who cannot publish DNS records would use.
"""

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config.provider_settings import ProviderProfile
from config.settings import settings_from_mapping

DKIM_DOMAIN = "lleida.net"
DKIM_SELECTOR = "acuse2026"
DKIM_RECORD_NAME = f"{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}"
SIGNER_PATTERN = r"O=Lleida Networks Pruebas"
_VALID_FROM = datetime(2024, 1, 1, tzinfo=UTC)
_VALID_FOR = timedelta(days=365 * 20)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, in both cryptography's and asn1crypto's types."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def asn1_certificate(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def asn1_key(self) -> asn1_keys.PrivateKeyInfo:
        der = self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return asn1_keys.PrivateKeyInfo.load(der)

    def write_pem(self, path: Path) -> Path:
        """Write the certificate as PEM to ``path`` and return the path."""
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path


@dataclass(frozen=True)
class DkimKey:
    """An RSA key for DKIM: the private key in PEM, and the TXT record that publishes it."""

    private_pem: bytes
    record: str


@dataclass(frozen=True)
class Pki:
    """The whole invented trust setup of the tests."""

    ca: KeyPair
    signer: KeyPair
    tsa: KeyPair
    rogue_ca: KeyPair
    rogue_signer: KeyPair
    other_signer: KeyPair
    dkim: DkimKey
    rogue_dkim: DkimKey


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ES"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> rsa.RSAPrivateKey:
    # pyHanko's test time-stamping authority signs with RSA only.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: KeyPair | None,
    *,
    ca: bool = False,
    time_stamping: bool = False,
) -> KeyPair:
    issuer_name = issuer.certificate.subject if issuer else subject
    issuer_key = issuer.key if issuer else key
    usage: dict[str, Any] = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if ca:
        usage.update(key_cert_sign=True, crl_sign=True)
    else:
        usage.update(digital_signature=True, content_commitment=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_VALID_FROM)
        .not_valid_after(_VALID_FROM + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
    )
    if time_stamping:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return KeyPair(builder.sign(issuer_key, hashes.SHA256()), key)


def _dkim_key() -> DkimKey:
    key = _new_key()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii")
    return DkimKey(private_pem, record)


@cache
def invented_pki() -> Pki:
    """Return the session's trust setup, generating its keys on first use."""
    ca_key = _new_key()
    ca = _issue(_name("CA de Pruebas Acuse", "Autoridad de Pruebas"), ca_key, None, ca=True)
    signer = _issue(_name("Firma de certificados", "Lleida Networks Pruebas"), _new_key(), ca)
    tsa = _issue(
        _name("Sellado de tiempo", "Lleida Networks Pruebas"), _new_key(), ca, time_stamping=True
    )
    rogue_ca_key = _new_key()
    rogue_ca = _issue(_name("CA Falsa", "Lleida Networks Pruebas"), rogue_ca_key, None, ca=True)
    rogue_signer = _issue(
        _name("Firma de certificados", "Lleida Networks Pruebas"), _new_key(), rogue_ca
    )
    other_signer = _issue(_name("Firma de facturas", "Otra Empresa de Pruebas"), _new_key(), ca)
    return Pki(ca, signer, tsa, rogue_ca, rogue_signer, other_signer, _dkim_key(), _dkim_key())


def trusted_profile(directory: Path, **overrides: Any) -> ProviderProfile:
    """Return the Lleida.net profile trusting the test CA, with the DKIM key pinned.

    ``directory`` receives the CA's PEM file. Without overrides, both checks are under
    ``require`` because trust roots are configured, DNS lookups are off and a timestamp is
    required.
    """
    pki = invented_pki()
    root = pki.ca.write_pem(directory / "test-ca.pem")
    lleida: dict[str, Any] = {
        "trust_roots": [str(root)],
        "signer_pattern": SIGNER_PATTERN,
        "dkim_keys": {DKIM_RECORD_NAME: pki.dkim.record},
        "dkim_dns": False,
        "require_timestamp": True,
    }
    lleida.update(overrides)
    return settings_from_mapping({"providers": {"lleida": lleida}}, directory).providers["lleida"]
