"""Dates and times as certificates and notices print them, turned into aware UTC datetimes.

Accepted forms, each followed by an optional zone:

- ``dd/mm/yyyy hh:mm[:ss]`` (also with ``-`` or ``.``): the day always comes first;
- ISO 8601, ``yyyy-mm-ddThh:mm[:ss[.fff]]``;
- month names in Spanish, Catalan or English, full or abbreviated:
  ``3 de diciembre de 2026 10:15``, ``3 d'octubre de 2026 a les 10:15``,
  ``3 December 2026 10:15``, ``December 3, 2026 at 10:15 AM``.

The zone is an offset (``+01:00``, ``+0100``, ``GMT+1``, ``UTC-05:00``, ``Z``), an
abbreviation from ``ZONE_ABBREVIATIONS`` or an IANA name (``Europe/Madrid``). A time with no
zone is read in the caller's default zone. A time that the clock skips when summer time
starts then counts in the offset before the change, so 02:30 on the last Sunday of March in
Madrid is 01:30 UTC. A time that occurs twice when summer time ends is read as its first
occurrence, the summer-time one.
"""

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from monitor.provider import fold_text

ZONE_ABBREVIATIONS: dict[str, timedelta] = {
    "utc": timedelta(0),
    "gmt": timedelta(0),
    "z": timedelta(0),
    "wet": timedelta(0),
    "west": timedelta(hours=1),
    "cet": timedelta(hours=1),
    "cest": timedelta(hours=2),
    "cot": timedelta(hours=-5),
}

_MONTHS = {
    1: ("enero", "ene", "gener", "gen", "january", "jan"),
    2: ("febrero", "feb", "febrer", "february"),
    3: ("marzo", "mar", "marc", "march"),
    4: ("abril", "abr", "april", "apr"),
    5: ("mayo", "may", "maig", "mai"),
    6: ("junio", "jun", "juny", "june"),
    7: ("julio", "jul", "juliol", "july"),
    8: ("agosto", "ago", "agost", "august", "aug"),
    9: ("septiembre", "setiembre", "sep", "sept", "setembre", "set", "september"),
    10: ("octubre", "oct", "october"),
    11: ("noviembre", "nov", "novembre", "november"),
    12: ("diciembre", "dic", "desembre", "des", "december", "dec"),
}
MONTH_NUMBERS = {name: number for number, names in _MONTHS.items() for name in names}

# The text is folded (lowercase, no accents) before these patterns run.
_TIME = (
    r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,]\d+)?)?"
    r"(?:\s*(?P<meridiem>[ap])\.?\s?m\b\.?)?"
    r"(?:\s*(?:h|hrs?|horas|hores)\b\.?)?"
)
_TIME_LEAD = r"[\s,]*(?:(?:a\s+las|a\s+les|a\s+la|at)\s+|-\s*)?"
_PATTERNS = (
    re.compile(
        r"(?<!\d)(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?:t|\s+)" + _TIME,
    ),
    re.compile(
        r"(?<![\d/.-])(?P<day>\d{1,2})(?P<sep>[/.-])(?P<month>\d{1,2})(?P=sep)(?P<year>\d{4})"
        + _TIME_LEAD
        + _TIME,
    ),
    re.compile(
        r"(?<!\d)(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:de\s+|d')?(?P<month_name>[a-z]+)\.?,?\s+"
        r"(?:de\s+|del\s+)?(?P<year>\d{4})" + _TIME_LEAD + _TIME,
    ),
    re.compile(
        r"(?<![a-z])(?P<month_name>[a-z]+)\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+"
        r"(?P<year>\d{4})" + _TIME_LEAD + _TIME,
    ),
)
_ZONE = re.compile(
    r"\s*\(?\s*(?:"
    r"(?P<named_offset>(?:utc|gmt)\s*[+-]\d{1,2}(?::?\d{2})?)(?![\d:])"
    r"|(?P<offset>[+-]\d{2}(?::?\d{2})?)(?![\d:])"
    r"|(?P<iana>[a-z]+(?:/[a-z0-9_+-]+){1,2})"
    r"|(?P<abbreviation>[a-z]{1,5})\b"
    r")"
)
_OFFSET_PARTS = re.compile(r"(?P<sign>[+-])\s*(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?$")


def parse_printed_time(text: str, default_zone: tzinfo) -> datetime | None:
    """Return the first date and time printed in ``text`` as an aware UTC datetime.

    Returns None when ``text`` contains no date with a time of day, or the date is impossible
    (31/02). A date without a time is not enough, because the hour is what matching needs.
    """
    folded = fold_text(text)
    match = _first_match(folded)
    if match is None:
        return None

    local = _local_datetime(match)
    if local is None:
        return None

    zone = _zone_after(folded, match.end()) or default_zone
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _first_match(folded: str) -> re.Match[str] | None:
    candidates = [
        match
        for pattern in _PATTERNS
        for match in pattern.finditer(folded)
        if _month_of(match) is not None
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda match: match.start())


def _month_of(match: re.Match[str]) -> int | None:
    groups = match.groupdict()
    if groups.get("month_name"):
        return MONTH_NUMBERS.get(groups["month_name"])
    return int(groups["month"])


def _local_datetime(match: re.Match[str]) -> datetime | None:
    month = _month_of(match)
    if month is None:
        return None

    hour = int(match["hour"])
    meridiem = match["meridiem"]
    if meridiem is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)

    try:
        return datetime(  # noqa: DTZ001 - the zone is attached once it is known
            int(match["year"]),
            month,
            int(match["day"]),
            hour,
            int(match["minute"]),
            int(match["second"] or 0),
        )
    except ValueError:
        return None


def _zone_after(folded: str, position: int) -> tzinfo | None:
    match = _ZONE.match(folded, position)
    if match is None:
        return None
    if match["named_offset"] or match["offset"]:
        return _fixed_offset(match["named_offset"] or match["offset"])
    if match["iana"]:
        return _zone_named(match["iana"])
    offset = ZONE_ABBREVIATIONS.get(match["abbreviation"])
    return None if offset is None else timezone(offset)


def _fixed_offset(text: str) -> tzinfo | None:
    parts = _OFFSET_PARTS.search(text.replace(" ", ""))
    if parts is None:
        return None

    hours = int(parts["hours"])
    minutes = int(parts["minutes"] or 0)
    if hours > 14 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if parts["sign"] == "-" else offset)


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def _zone_named(folded_name: str) -> tzinfo | None:
    name = _zone_names().get(folded_name)
    return None if name is None else ZoneInfo(name)
