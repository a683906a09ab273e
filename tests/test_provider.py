"""The compiled provider profile: sender check, subject normalisation and pattern tests."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.provider import (
    LabelField,
    ProviderRules,
    address_domain,
    collapse_whitespace,
    fold_text,
    normalize_subject,
    rules_for,
)
from tests.evidence_factory import lleida_profile


@pytest.fixture
def rules() -> ProviderRules:
    return rules_for(lleida_profile())


@pytest.mark.parametrize(
    "address",
    [
        "noreply@lleida.net",
        "noreply@certificado.lleida.net",
        "Lleida.net <noreply@certificado.lleida.net>",
        "NOREPLY@Certificado.LLEIDA.NET",
        "noreply@lleida.net.",
    ],
)
def test_provider_sender_accepted(rules: ProviderRules, address: str) -> None:
    assert rules.is_provider_sender(address)


@pytest.mark.parametrize(
    "address",
    [
        "noreply@lleida.net.evil.example",
        "noreply@lleida-net.example",
        "noreply@evil-lleida.net",
        "noreply@notlleida.net",
        "noreply@xn--lleida-9ua.net",
        "noreply@lleid\u0430.net",  # Cyrillic small a
        "noreply@\uff4c\uff4c\uff45\uff49\uff44\uff41.net",  # full-width letters
        "noreply@lleida\u3002net",  # ideographic full stop
        '"noreply@lleida.net" <attacker@evil.example>',
        "noreply@lleida.net, attacker@evil.example",
        "lleida.net",
        "",
    ],
)
def test_provider_sender_look_alike_rejected(rules: ProviderRules, address: str) -> None:
    assert not rules.is_provider_sender(address)


def test_provider_sender_none_rejected(rules: ProviderRules) -> None:
    assert not rules.is_provider_sender(None)


def test_address_domain_of_display_form() -> None:
    assert address_domain("Cartera <Cartera@Constructora.Example>") == "constructora.example"


def test_fold_text_strips_accents_and_case() -> None:
    assert fold_text("  Asunción   PEÑALOZA\td\u2019entrega ") == "asuncion penaloza d'entrega"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Correo certificado: Estado de cuenta", "estado de cuenta"),
        ("RE: RV: Correo certificado: Estado de cuenta", "estado de cuenta"),
        ("[Certificado] Fwd: Estado   de\tcuenta", "estado de cuenta"),
        ("Correu certificat: Carta de cobrament", "carta de cobrament"),
        ("Certified email: Account statement", "account statement"),
        ("Correo no certificado: Estado de cuenta", "estado de cuenta"),
        ("Email not certified: Account statement", "account statement"),
        ("Correo electrónico certificado - Cuota inicial Peñalisa", "cuota inicial penalisa"),
        ("Estado de cuenta", "estado de cuenta"),
    ],
)
def test_normalize_subject(rules: ProviderRules, subject: str, expected: str) -> None:
    assert rules.normalize_subject(subject) == expected


def test_normalize_subject_function_uses_profile() -> None:
    assert normalize_subject("Correo certificado: Año 2026", lleida_profile()) == "ano 2026"


def test_normalize_subject_prefix_only(rules: ProviderRules) -> None:
    assert rules.normalize_subject("Correo certificado:") == ""


def test_strip_prefixes_keeps_case_and_accents(rules: ProviderRules) -> None:
    stripped = rules.strip_subject_prefixes("RV: Correo certificado: Cuota de Asunción")

    assert stripped == "Cuota de Asunción"


def test_has_subject_prefix(rules: ProviderRules) -> None:
    assert rules.has_subject_prefix("Correo certificado: Factura de cuota")
    assert not rules.has_subject_prefix("Factura FV-2026-0042")


@pytest.mark.parametrize("subject", ["Factura FV-2026-0042", "Your invoice for March", "Boletín"])
def test_ignored_subjects(rules: ProviderRules, subject: str) -> None:
    assert rules.is_ignored(subject)


def test_evidence_subject_not_ignored(rules: ProviderRules) -> None:
    assert not rules.is_ignored("Correo certificado: Estado de cuenta")


@pytest.mark.parametrize(
    "text",
    [
        "Su correo no ha sido certificado.",
        "Correo no certificado: Estado de cuenta",
        "Correu no certificat: Carta",
        "El vostre correu no s'ha pogut certificar.",
        "Your email could not be certified.",
        "Email not certified: Statement",
    ],
)
def test_rejection_wording(rules: ProviderRules, text: str) -> None:
    assert rules.is_rejection(text)


def test_certified_wording_is_not_rejection(rules: ProviderRules) -> None:
    assert not rules.is_rejection("Correo certificado: Estado de cuenta")


def test_rejection_line(rules: ProviderRules) -> None:
    text = "Estimado cliente:\n\n  Su correo  no ha sido certificado.\nAtentamente"

    assert rules.rejection_line(text) == "Su correo no ha sido certificado."


@pytest.mark.parametrize(
    "text",
    [
        "02/03/2026 15:05:07 CET - 550 5.1.1 <a@b.example>: User unknown",
        "Error en la entrega",
        "Delivery failed",
        "No entregado",
        "451 Temporary failure",
    ],
)
def test_failure_wording(rules: ProviderRules, text: str) -> None:
    assert rules.is_failure(text)


@pytest.mark.parametrize("text", ["Entregado", "Lliurat", "Delivered", "02/03/2026 15:05:07 CET"])
def test_delivery_wording_is_not_failure(rules: ProviderRules, text: str) -> None:
    assert not rules.is_failure(text)


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Destinatario", LabelField.RECIPIENT),
        ("DESTINATARIO:", LabelField.RECIPIENT),
        ("Fecha y hora de envio", LabelField.SENT_AT),
        ("Data i hora d\u2019entrega:", LabelField.DELIVERED_AT),
        ("Identificador", LabelField.CERTIFICATE_ID),
        ("Identificador del mensaje", LabelField.MESSAGE_ID),
    ],
)
def test_label_field(rules: ProviderRules, label: str, field: LabelField) -> None:
    assert rules.label_field(label) is field


def test_unknown_label(rules: ProviderRules) -> None:
    assert rules.label_field("Estimado cliente") is None


def test_rules_cached_per_profile() -> None:
    profile = lleida_profile()

    assert rules_for(profile) is rules_for(profile)


def test_rules_rebuilt_for_other_profile() -> None:
    profile = lleida_profile()
    other = profile.model_copy(update={"sender_domains": ["provider.example"]})

    assert rules_for(other).is_provider_sender("x@provider.example")
    assert not rules_for(profile).is_provider_sender("x@provider.example")


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u2028ab.é")))
def test_collapse_whitespace_agrees_with_regex(text: str) -> None:
    assert collapse_whitespace(text) == re.sub(r"\s+", " ", text).strip()
