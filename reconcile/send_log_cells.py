"""Cell values of PACO's send log: send times, recipient addresses, the Lleida.net flag and text.

Each parser takes one cell as the file gives it: text from CSV, and text, numbers, booleans or
datetimes from XLSX. It returns the value acuse stores, or raises CellError with a translated
reason that names the value and the expected form.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeAlias

from openpyxl.utils.datetime import WINDOWS_EPOCH, from_excel

from config.i18n import _


@dataclass(frozen=True, slots=True)
class UnsavedFormula:
    """An XLSX cell that contains a formula but no value, because no spreadsheet program saved it.

    Files written by scripts often look like this: Excel or LibreOffice compute and store the
    value when they save the file.
    """

    coordinate: str


Cell: TypeAlias = (
    str | int | float | bool | datetime | date | time | timedelta | UnsavedFormula | None
)

MAX_ADDRESS_LENGTH = 254
_LAST_EXCEL_SERIAL = 2_958_466  # 1 January 10000, one day past the last date Excel can show

_DAY_FIRST = re.compile(
    r"""
    (?P<day>\d{1,2})[/.-](?P<month>\d{1,2})[/.-](?P<year>\d{4})
    (?:
        [\sT,]+
        (?P<hour>\d{1,2}):(?P<minute>\d{2})
        (?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6}))?)?
        (?:\s*(?P<meridiem>[ap])\.?\s?m\.?)?
        \s*(?P<offset>z|[+-]\d{2}:?\d{2})?
    )?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACES = re.compile(r"\s+")

# An address item ends at ";", "," or a line break outside a quoted display name or <...>.
_ADDRESS_ITEM = re.compile(r'(?:"[^"]*"|<[^>]*>|[^;,\n])+')
_ANGLE_ADDRESS = re.compile(r"<([^<>]*)>\s*$")
_ADDRESS = re.compile(
    r"[^\s@<>()\[\]\\,;:\"]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}",
    re.UNICODE,
)

_COPIED = frozenset({"sí", "si", "yes", "true", "verdadero", "1", "x", "✓", "✔"})
_NOT_COPIED = frozenset({"no", "false", "falso", "0"})
_VARIATION_SELECTORS = dict.fromkeys(range(0xFE00, 0xFE10))


class CellError(ValueError):
    """A cell value that cannot be stored. The message is the translated reason."""


def header_key(text: str) -> str:
    """Reduce a column header to lowercase letters and digits without accents.

    "Fecha de envío", " FECHA DE ENVIO " and "fecha_de_envio" all become "fechadeenvio".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if char.isalnum()).casefold()


def cell_text(cell: Cell) -> str | None:
    """Return the cell as stripped NFC text, or None when it is empty.

    XLSX numbers with no fraction print without ".0", so negocio 1234 reads the same from a
    CSV and from an XLSX export.
    """
    if cell is None or isinstance(cell, UnsavedFormula):
        return None
    if isinstance(cell, str) and cell.isascii():
        return cell.strip() or None
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    text = cell.isoformat() if isinstance(cell, datetime | date | time) else str(cell)
    text = unicodedata.normalize("NFC", text).strip()
    return text or None


def parse_sent_at(
    cell: Cell,
    zone: tzinfo,
    date_format: str | None = None,
    epoch: datetime = WINDOWS_EPOCH,
) -> datetime:
    """Return the send time in the cell as an aware UTC datetime.

    A time without an offset is local time in ``zone``. With ``date_format`` set, text cells
    must match that strptime format. ``epoch`` is the workbook's date system for Excel serial
    numbers. Raises CellError for an empty cell, a date without a time of day, or text in no
    accepted form.
    """
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        raise CellError(_("the send date is missing"))
    if isinstance(cell, UnsavedFormula):
        raise CellError(unsaved_formula_reason(cell))
    if isinstance(cell, bool | time | timedelta):
        raise CellError(_invalid_date_reason(cell))
    if isinstance(cell, datetime):
        return to_utc(cell, zone)
    if isinstance(cell, date):
        raise CellError(_date_without_time_reason(cell.isoformat()))
    if isinstance(cell, int | float):
        return to_utc(_from_excel_serial(cell, epoch), zone)
    return to_utc(_parse_date_text(cell, date_format), zone)


def to_utc(value: datetime, zone: tzinfo) -> datetime:
    """Convert ``value`` to UTC, reading a naive value as wall-clock time in ``zone``.

    Raises CellError for a wall-clock time that ``zone`` skips or repeats when its clocks
    change, because the instant it names would be a guess, and for a time whose UTC instant
    falls outside the years 1 to 9999 that datetime can hold.
    """
    try:
        return _to_utc(value, zone)
    except OverflowError as exc:
        message = _(
            "the send time {value} is out of range in UTC: fix the year in the send log"
        ).format(value=value.isoformat(sep=" "))
        raise CellError(message) from exc


def _to_utc(value: datetime, zone: tzinfo) -> datetime:
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)

    earlier = value.replace(tzinfo=zone, fold=0)
    later = value.replace(tzinfo=zone, fold=1)
    if earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        message = _(
            "the send time {value} does not exist in {zone} because the clocks moved forward: "
            "write the time with its UTC offset"
        ).format(value=value.isoformat(sep=" "), zone=zone)
        raise CellError(message)
    if earlier.utcoffset() != later.utcoffset():
        message = _(
            "the send time {value} happened twice in {zone} because the clocks moved back: "
            "write the time with its UTC offset"
        ).format(value=value.isoformat(sep=" "), zone=zone)
        raise CellError(message)
    return earlier.astimezone(UTC)


def _from_excel_serial(serial: float, epoch: datetime) -> datetime:
    if not 1 <= serial < _LAST_EXCEL_SERIAL:
        raise CellError(_invalid_date_reason(serial))
    if float(serial).is_integer():
        raise CellError(_date_without_time_reason(str(serial)))
    return from_excel(serial, epoch)  # type: ignore[no-any-return]


def _parse_date_text(cell: str, date_format: str | None) -> datetime:
    text = _SPACES.sub(" ", cell).strip()
    if date_format is not None:
        return _parse_with_format(text, date_format)
    if _ISO_DATE.match(text):
        return _parse_iso(text)
    return _parse_day_first(text)


def _parse_with_format(text: str, date_format: str) -> datetime:
    try:
        return datetime.strptime(text, date_format)  # noqa: DTZ007 (to_utc attaches the zone)
    except ValueError as exc:
        message = _(
            "the send date {value!r} does not match the configured date_format {format!r}: "
            "fix the cell or send_log.date_format in the project's configuration"
        ).format(value=text, format=date_format)
        raise CellError(message) from exc


def _parse_iso(text: str) -> datetime:
    if _ISO_DATE.fullmatch(text):
        raise CellError(_date_without_time_reason(text))
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CellError(_invalid_date_reason(text)) from exc


def _parse_day_first(text: str) -> datetime:
    match = _DAY_FIRST.fullmatch(text)
    if match is None:
        raise CellError(_invalid_date_reason(text))
    if match["hour"] is None:
        raise CellError(_date_without_time_reason(text))

    hour = _hour_of_day(int(match["hour"]), match["meridiem"], text)
    microsecond = int((match["fraction"] or "0").ljust(6, "0"))
    try:
        value = datetime(  # noqa: DTZ001 (to_utc attaches the zone)
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            hour,
            int(match["minute"]),
            int(match["second"] or 0),
            microsecond,
        )
    except ValueError as exc:
        raise CellError(_invalid_date_reason(text)) from exc

    if match["offset"] is None:
        return value
    return value.replace(tzinfo=_fixed_offset(match["offset"], text))


def _hour_of_day(hour: int, meridiem: str | None, text: str) -> int:
    if meridiem is None:
        return hour
    if not 1 <= hour <= 12:
        raise CellError(_invalid_date_reason(text))
    afternoon = meridiem.lower() == "p"
    return hour % 12 + (12 if afternoon else 0)


def _fixed_offset(offset: str, text: str) -> tzinfo:
    try:
        return datetime.strptime(offset.replace("z", "Z"), "%z").tzinfo or UTC
    except ValueError as exc:
        raise CellError(_invalid_date_reason(text)) from exc


def unsaved_formula_reason(cell: UnsavedFormula) -> str:
    """Return the reason to reject a row whose cell holds a formula without a saved value."""
    return _(
        "cell {cell} holds a formula without a saved value: open the file in Excel or "
        "LibreOffice, save it, and import it again"
    ).format(cell=cell.coordinate)


def _invalid_date_reason(value: object) -> str:
    return _(
        "invalid send date {value!r}: write it as dd/mm/yyyy hh:mm, dd/mm/yyyy hh:mm a. m. "
        "or ISO 8601 (yyyy-mm-dd hh:mm)"
    ).format(value=value)


def _date_without_time_reason(value: str) -> str:
    return _(
        "the send date {value!r} has no time of day: export the report with the send time, "
        "or set send_log.date_format if the report never has one"
    ).format(value=value)


def parse_recipients(cell: Cell) -> tuple[list[str], list[str]]:
    """Split a recipient cell into valid addresses (lowercase, each once) and invalid items.

    Items are separated by ";", "," or line breaks, and may carry a display name as in
    ``"Peñaloza, Ana" <ana@example.co>``.
    """
    text = cell_text(cell)
    if text is None:
        return [], []

    valid: list[str] = []
    invalid: list[str] = []
    for match in _ADDRESS_ITEM.finditer(text):
        item = match.group().strip()
        if not item:
            continue
        address = _address_of(item)
        if address is None:
            invalid.append(item)
        elif address not in valid:
            valid.append(address)
    return valid, invalid


def _address_of(item: str) -> str | None:
    angle = _ANGLE_ADDRESS.search(item)
    address = (angle.group(1) if angle else item).strip()
    address = address.removeprefix("mailto:").lower()
    if len(address) > MAX_ADDRESS_LENGTH or not _ADDRESS.fullmatch(address):
        return None
    return address


def parse_lleida_copied(cell: Cell) -> bool:
    """Return whether the Lleida.net column marks the send as copied; an empty cell is False.

    Accepts sí/si/no, yes/no, true/false, verdadero/falso, 1/0, x and the tick marks ✓ and ✔.
    Raises CellError for any other value.
    """
    if cell is None or isinstance(cell, bool):
        return bool(cell)
    if isinstance(cell, int | float) and cell in (0, 1):
        return bool(cell)

    text = cell_text(cell)
    if text is None:
        return False
    word = text.casefold()
    if word not in _COPIED and word not in _NOT_COPIED:
        word = header_key(text) or text.translate(_VARIATION_SELECTORS).strip()
    if word in _COPIED:
        return True
    if word in _NOT_COPIED:
        return False
    message = _(
        "invalid value {value!r} in the Lleida.net copy column: write sí, no, x, a tick, "
        "or leave the cell empty"
    ).format(value=text)
    raise CellError(message)
