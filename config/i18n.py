"""Translations of everything a person reads, through gettext catalogs.

Message ids are English. ``es_CO`` is the default locale, and any locale that starts with ``en``
uses the message ids as they are. The active translation lives in a context variable, so the CLI
sets it once per invocation while alert rendering can use ``translation(locale)`` per project.
"""

import gettext
from contextvars import ContextVar
from functools import cache
from pathlib import Path

DOMAIN = "acuse"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "es_CO"
SUPPORTED_LOCALES = ("es_CO", "en")

_active: ContextVar[tuple[str, gettext.NullTranslations] | None] = ContextVar(
    "acuse_translation", default=None
)


def normalize_locale(locale: str) -> str:
    """Map a user's locale (``es``, ``es-CO``, ``en_US``, ``EN``) to a supported one.

    Raises ValueError for a language acuse has no catalog for.
    """
    cleaned = locale.strip().replace("-", "_")
    language = cleaned.split("_")[0].lower()
    if language == "es":
        return "es_CO"
    if language == "en":
        return "en"
    message = _("unsupported language {locale!r}: use one of {supported}").format(
        locale=locale, supported="es (es_CO), en"
    )
    raise ValueError(message)


@cache
def translation(locale: str) -> gettext.NullTranslations:
    """Return the translations for a supported locale; English returns the message ids."""
    normalized = normalize_locale(locale)
    if normalized == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[normalized])


def activate(locale: str) -> None:
    """Make ``locale`` the translation that ``_`` and ``ngettext`` use in this context."""
    _active.set((normalize_locale(locale), translation(locale)))


def _active_pair() -> tuple[str, gettext.NullTranslations]:
    current = _active.get()
    if current is None:
        current = (DEFAULT_LOCALE, translation(DEFAULT_LOCALE))
        _active.set(current)
    return current


def active_locale() -> str:
    """Return the active supported locale (``es_CO`` or ``en``), the default when none is set."""
    return _active_pair()[0]


def active_locale_translation() -> gettext.NullTranslations:
    """Return the active translation, activating the default locale on first use."""
    return _active_pair()[1]


def _(message: str) -> str:
    """Translate ``message`` into the active locale."""
    return active_locale_translation().gettext(message)


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Mark ``message`` for extraction; it is translated later, where it is shown."""
    return message


def ngettext(singular: str, plural: str, count: int) -> str:
    """Translate a message whose form depends on ``count``."""
    return active_locale_translation().ngettext(singular, plural, count)


def pgettext(context: str, message: str) -> str:
    """Translate ``message`` in ``context``, for short words with several meanings."""
    return active_locale_translation().pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, count: int) -> str:
    """Translate a message in ``context`` whose form depends on ``count``."""
    return active_locale_translation().npgettext(context, singular, plural, count)
