"""Loading trust roots from PEM and DER files without pyHanko, as pyHanko's own loader does."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pyhanko.keys import load_certs_from_pemder

from monitor.trust_roots import SignatureTrust, TrustRootError, certificates_in, signature_trust_for
from tests.trust_pki import invented_pki, trusted_profile


def pem_bundle() -> bytes:
    """Return the test CA and TSA certificates in PEM with the TSA's private key between them."""
    pki = invented_pki()
    key = pki.tsa.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        pki.ca.certificate.public_bytes(serialization.Encoding.PEM)
        + key
        + pki.tsa.certificate.public_bytes(serialization.Encoding.PEM)
    )


def test_pem_bundle_skips_private_key() -> None:
    pki = invented_pki()

    certificates = certificates_in(pem_bundle())

    assert [cert.dump() for cert in certificates] == [
        pki.ca.asn1_certificate.dump(),
        pki.tsa.asn1_certificate.dump(),
    ]


def test_der_certificate_loaded() -> None:
    der = invented_pki().ca.certificate.public_bytes(serialization.Encoding.DER)

    certificates = certificates_in(der)

    assert [cert.dump() for cert in certificates] == [der]


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_same_roots_as_pyhanko(tmp_path: Path, encoding: serialization.Encoding) -> None:
    path = tmp_path / "roots"
    if encoding is serialization.Encoding.PEM:
        path.write_bytes(pem_bundle())
    else:
        path.write_bytes(invented_pki().ca.certificate.public_bytes(encoding))

    ours = [cert.dump() for cert in certificates_in(path.read_bytes())]
    theirs = [cert.dump() for cert in load_certs_from_pemder([str(path)])]

    assert ours == theirs


def test_pem_without_certificate_rejected(tmp_path: Path) -> None:
    key_only = tmp_path / "key-only.pem"
    key_only.write_bytes(
        invented_pki().tsa.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(TrustRootError, match=r"key-only\.pem contains no certificate"):
        SignatureTrust.from_profile(trusted_profile(tmp_path, trust_roots=[str(key_only)]))


def test_damaged_der_rejected(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.der"
    damaged.write_bytes(b"\x30\x82\xff\xff not DER")

    with pytest.raises(TrustRootError, match=r"Cannot read the trust root file .*damaged\.der"):
        SignatureTrust.from_profile(trusted_profile(tmp_path, trust_roots=[str(damaged)]))


def test_signature_trust_loaded_once_per_profile(tmp_path: Path) -> None:
    profile = trusted_profile(tmp_path)
    other = trusted_profile(tmp_path)

    first = signature_trust_for(profile)

    assert signature_trust_for(profile) is first
    assert signature_trust_for(other) is not first
    assert [root.dump() for root in signature_trust_for(other).roots] == [
        root.dump() for root in first.roots
    ]
