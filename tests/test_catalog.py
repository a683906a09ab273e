"""The Spanish (es_CO) gettext catalog: complete, faithful to the placeholders, compiled, in use."""

import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from config.i18n import DOMAIN, LOCALE_DIR, translation

REPOSITORY = Path(__file__).resolve().parent.parent
EXTRACTION_CONFIG = REPOSITORY / "babel.cfg"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
SPANISH_DIR = LOCALE_DIR / "es_CO" / "LC_MESSAGES"
SPANISH_PO = SPANISH_DIR / f"{DOMAIN}.po"
SPANISH_MO = SPANISH_DIR / f"{DOMAIN}.mo"

# printf-style conversions, with an optional mapping key: %s, %d, %(prog)s, %%.
PERCENT_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")

Placeholder = tuple[str, ...]
MessageKey = tuple[str | None, str | tuple[str, ...]]


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def _read_mo(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_mo(handle)


def _template_messages() -> list[Message]:
    return [message for message in _read_po(TEMPLATE) if message.id]


def _source_messages() -> dict[MessageKey, str]:
    """Extract the messages of the code and templates as ``make catalogs`` does, with a location.

    Reading the code, not the .pot, catches a message that was added without re-extracting.
    """
    with EXTRACTION_CONFIG.open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(EXTRACTION_CONFIG))
    found: dict[MessageKey, str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        REPOSITORY, method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        key = (context, message if isinstance(message, str) else tuple(message))
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def _catalog_key(message: Message) -> MessageKey:
    message_id = message.id if isinstance(message.id, str) else tuple(message.id)
    return (message.context, message_id)


def _message_key(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def _forms(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return (text,) if isinstance(text, str) else tuple(text)


def placeholders(text: str, flags: set[str]) -> list[Placeholder]:
    """Return the sorted placeholders of ``text``: brace fields, and printf ones when flagged."""
    found: list[Placeholder] = []
    try:
        for _literal, field, spec, conversion in string.Formatter().parse(text):
            if field is not None:
                found.append(("{}", field, conversion or "", spec or ""))
    except ValueError:
        # Unbalanced braces: the text is not a str.format template, so it has no brace fields.
        found = []
    if "python-format" in flags:
        found += [("%", match) for match in PERCENT_PLACEHOLDER.findall(text)]
    return sorted(found)


TEMPLATE_MESSAGES = _template_messages()
SOURCE_MESSAGES = _source_messages()
SPANISH = _read_po(SPANISH_PO)
MESSAGE_IDS = [
    (f"{message.context}|" if message.context else "") + _message_key(message)[:60]
    for message in TEMPLATE_MESSAGES
]


def test_template_matches_code() -> None:
    in_template = {_catalog_key(message) for message in TEMPLATE_MESSAGES}

    not_extracted = {key: where for key, where in SOURCE_MESSAGES.items() if key not in in_template}
    stale = in_template - set(SOURCE_MESSAGES)

    assert not not_extracted, f"messages missing from the .pot, run make catalogs: {not_extracted}"
    assert not stale, f"the .pot has messages the code no longer uses, run make catalogs: {stale}"


def test_code_messages_translated() -> None:
    problems = {}
    for (context, message_id), where in SOURCE_MESSAGES.items():
        entry = SPANISH.get(message_id, context=context)
        if entry is None:
            problems[where] = "missing from the .po"
        elif entry.fuzzy:
            problems[where] = "fuzzy"
        elif not all(form.strip() for form in _forms(entry.string)):
            problems[where] = "untranslated"

    assert not problems, f"translate these in the es_CO .po, then make catalogs: {problems}"


def test_no_obsolete_entries() -> None:
    assert not SPANISH.obsolete, f"remove the obsolete entries: {list(SPANISH.obsolete)}"


@pytest.mark.parametrize("template", TEMPLATE_MESSAGES, ids=MESSAGE_IDS)
def test_message_translated(template: Message) -> None:
    translation = SPANISH.get(template.id, context=template.context)

    assert translation is not None, "missing from the .po: run make catalogs"
    assert not translation.fuzzy
    assert len(_forms(translation.string)) == (SPANISH.num_plurals if template.pluralizable else 1)
    assert all(form.strip() for form in _forms(translation.string))


@pytest.mark.parametrize("template", TEMPLATE_MESSAGES, ids=MESSAGE_IDS)
def test_placeholders_kept(template: Message) -> None:
    translation = SPANISH.get(template.id, context=template.context)
    assert translation is not None
    source_forms = _forms(template.id)
    flags = set(template.flags)

    for index, form in enumerate(_forms(translation.string)):
        # The first form translates the singular id, and every other form the plural id.
        source = source_forms[min(index, len(source_forms) - 1)]
        assert placeholders(form, flags) == placeholders(source, flags), form


def test_plural_forms_spanish() -> None:
    assert SPANISH.num_plurals == 2
    assert SPANISH.plural_expr == "(n != 1)"


def _translations(
    catalog: Catalog,
) -> dict[tuple[str | None, tuple[str, ...]], tuple[str, ...]]:
    return {
        (message.context, _forms(message.id)): _forms(message.string)
        for message in catalog
        if message.id
    }


def test_mo_matches_po(tmp_path: Path) -> None:
    compiled = tmp_path / f"{DOMAIN}.mo"
    with compiled.open("wb") as handle:
        write_mo(handle, SPANISH)

    expected = _translations(_read_mo(compiled))
    shipped = _translations(_read_mo(SPANISH_MO))

    assert shipped == expected, "the .mo is stale: run make catalogs"


def test_mo_serves_contexts() -> None:
    spanish = translation("es_CO")

    assert spanish.pgettext("send state", "rejected") == "rechazado"
    assert spanish.pgettext("evidence kind", "rejected") == "rechazada"
    assert spanish.ngettext("{count} new send", "{count} new sends", 1) == "{count} envío nuevo"
    assert spanish.ngettext("{count} new send", "{count} new sends", 3) == "{count} envíos nuevos"


def _help(*options: str) -> str:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"ACUSE_CONFIG", "ACUSE_DEFAULTS__LOCALE", "LANGUAGE", "LC_ALL", "LANG"}
    }
    result = subprocess.run(
        [sys.executable, "-m", "acuse", *options, "--help"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_help_spanish_by_default() -> None:
    output = _help()

    assert output.startswith("Uso: acuse")
    assert "Opciones:" in output
    assert "Mostrar este mensaje y salir." in output


def test_help_english_with_lang() -> None:
    output = _help("--lang", "en")

    assert output.startswith("Usage: acuse")
    assert "Options:" in output
    assert "Show this message and exit." in output
