"""The rows of a send-log file, as CSV in any encoding and delimiter PACO may use, or as XLSX.

A record is a line number and the cells of that row. The number is the one shown to a person:
the row number in a spreadsheet, or the first line of the record in a text editor.
"""

import codecs
import csv
import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, time
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any, TypeAlias
from zipfile import BadZipFile, ZipFile, ZipInfo

from openpyxl import load_workbook
from openpyxl.styles.numbers import is_datetime
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook
from openpyxl.xml.functions import iterparse

from config.errors import AcuseError
from config.i18n import _
from config.settings import SendLogSettings
from reconcile.send_log_cells import Cell, UnsavedFormula

Record: TypeAlias = tuple[int, Sequence[Cell]]

CSV_DELIMITERS = (";", ",", "\t")
_CHUNK_SIZE = 1 << 20
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKUP_STARTS = (b"<!doctype", b"<html", b"<table", b"<?xml")

# Byte sequences that UTF-8 uses for Latin-1 letters and signs (U+0080 to U+00FF) and for
# punctuation and tick marks (U+2000 to U+27FF). Read as Windows-1252 they are "Ã±", "Â¿" or
# "â€œ", which Spanish text does not contain, so a file that is not valid UTF-8 but contains
# them mixes the two encodings.
_UTF8_SEQUENCE = re.compile(rb"[\xc2\xc3][\x80-\xbf]|\xe2[\x80-\x9f][\x80-\xbf]")
_UTF8_SEQUENCE_BYTES = 3
_UTF16_SAMPLE_BYTES = 4096
_UTF16_NUL_SHARE = 0.5

# The start of a shared-strings entry, <si> or <si ...>, with or without a namespace prefix.
_SHARED_STRING = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s>/]")
_SHARED_STRING_TAG_BYTES = 64
_FORMULA = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s>/]")


class SendLogError(AcuseError):
    """A send-log file cannot be read at all; ``line`` is set when one line is the cause."""

    def __init__(self, message: str, path: Path, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


def _save_as_fix() -> str:
    return _("open it in Excel and save it as .xlsx or as CSV UTF-8")


class FileFormat(StrEnum):
    """The storage format of a send-log file."""

    CSV = "csv"
    XLSX = "xlsx"


def detect_format(path: Path) -> FileFormat:
    """Return whether ``path`` is an XLSX workbook or CSV text, judged by its first bytes.

    Raises SendLogError for a file that cannot be read, an old binary .xls workbook, or an
    HTML or XML page saved with a spreadsheet extension.
    """
    try:
        with path.open("rb") as handle:
            start = handle.read(512)
    except OSError as exc:
        message = _("Cannot read send log {path}: {error}.").format(path=path, error=exc.strerror)
        raise SendLogError(message, path) from exc

    if start.startswith(b"PK\x03\x04"):
        return FileFormat.XLSX
    if start.startswith(_OLE_MAGIC):
        message = _("Send log {path} is an old Excel .xls workbook: {fix}.").format(
            path=path, fix=_save_as_fix()
        )
        raise SendLogError(message, path)
    if start.removeprefix(codecs.BOM_UTF8).lstrip().lower().startswith(_MARKUP_STARTS):
        message = _("Send log {path} is an HTML or XML page, not CSV or XLSX: {fix}.").format(
            path=path, fix=_save_as_fix()
        )
        raise SendLogError(message, path)
    return FileFormat.CSV


def detect_encoding(path: Path) -> str:
    """Return the codec of a CSV file: UTF-16 with a BOM, UTF-8 with or without one, or cp1252.

    Raises SendLogError when the file mixes UTF-8 and Windows-1252 text, or is neither,
    because reading it either way would store some names wrongly.
    """
    with path.open("rb") as handle:
        start = handle.read(_UTF16_SAMPLE_BYTES)
    if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    utf16 = _utf16_without_bom(start)
    if utf16 is not None:
        return utf16

    invalid_line = _first_invalid_utf8_line(path)
    if invalid_line is None:
        return "utf-8-sig"
    _check_windows_1252(path, invalid_line)
    return "cp1252"


def _utf16_without_bom(start: bytes) -> str | None:
    """Return the UTF-16 codec of text saved without a byte-order mark, or None.

    Headers, dates and addresses are ASCII, and in UTF-16 every ASCII character has a NUL
    byte: the second of its two bytes in little-endian order, the first in big-endian order.
    """
    pairs = len(start) // 2
    if pairs == 0:
        return None
    high = start[1 : pairs * 2 : 2].count(0) / pairs
    low = start[0 : pairs * 2 : 2].count(0) / pairs
    if high >= _UTF16_NUL_SHARE and low == 0:
        return "utf-16-le"
    if low >= _UTF16_NUL_SHARE and high == 0:
        return "utf-16-be"
    return None


def _chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield the file in chunks of bounded size, each with the line number it starts on."""
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            yield line, chunk
            line += chunk.count(b"\n")


def _first_invalid_utf8_line(path: Path) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    last_line = 1
    for first_line, chunk in _chunks(path):
        pending = decoder.getstate()[0]
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            offset = max(exc.start - len(pending), 0)
            return first_line + chunk[:offset].count(b"\n")
        last_line = first_line + chunk.count(b"\n")

    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return last_line
    return None


def _check_windows_1252(path: Path, invalid_utf8_line: int) -> None:
    carry = b""
    for first_line, chunk in _chunks(path):
        # The last bytes of the previous chunk come first, so no sequence is cut in two.
        data = carry + chunk
        data_line = first_line - carry.count(b"\n")
        match = _UTF8_SEQUENCE.search(data)
        if match is not None:
            utf8_line = data_line + data[: match.start()].count(b"\n")
            message = _(
                "Send log {path} mixes UTF-8 text (line {utf8_line}) and Windows-1252 text "
                "(line {cp1252_line}): save it again in one encoding, preferably as CSV UTF-8."
            ).format(path=path, utf8_line=utf8_line, cp1252_line=invalid_utf8_line)
            raise SendLogError(message, path, line=invalid_utf8_line)
        try:
            chunk.decode("cp1252")
        except UnicodeDecodeError as exc:
            line = first_line + chunk[: exc.start].count(b"\n")
            message = _(
                "Send log {path} is neither UTF-8 nor Windows-1252 text (line {line}): "
                "save it as CSV UTF-8."
            ).format(path=path, line=line)
            raise SendLogError(message, path, line=line) from exc
        carry = chunk[-(_UTF8_SEQUENCE_BYTES - 1) :]


def csv_records(path: Path, encoding: str, delimiter: str) -> Generator[Record, None, None]:
    """Yield each CSV record with the line it starts on; blank lines yield no cells.

    Raises SendLogError for text that is not valid in ``encoding`` or that the csv module
    cannot parse, such as a field larger than its limit after an unclosed quote.
    """
    start_line = last_start = 1
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for cells in reader:
                last_start = start_line
                yield start_line, cells
                start_line = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            message = _("Send log {path} cannot be read as CSV at line {line}: {error}.").format(
                path=path, line=start_line, error=exc
            )
            raise SendLogError(message, path, line=start_line) from exc

    # The csv module reads a quote that is never closed to the end of the file as one cell,
    # which would drop every row after it. Only the last record can hold such a quote, and
    # only when it spans several lines.
    if start_line - 1 > last_start:
        _check_quotes_closed(path, encoding, delimiter, last_start)


def _check_quotes_closed(path: Path, encoding: str, delimiter: str, record_line: int) -> None:
    """Raise SendLogError when the record that starts on ``record_line`` ends inside a quote."""
    with path.open(encoding=encoding, newline="") as handle:
        text = "".join(islice(handle, record_line - 1, None))
    if not _ends_inside_quotes(text, delimiter):
        return
    lines = text.count("\n") + (not text.endswith("\n"))
    message = _(
        "Send log {path} has a quote that opens in the record on line {line} and is never "
        "closed, so the {count} lines after it would be read as one cell: add the closing "
        "quote or remove the opening one, then import the file again."
    ).format(path=path, line=record_line, count=lines - 1)
    raise SendLogError(message, path, line=record_line)


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """Return whether the CSV record ``text`` ends inside a quoted cell, as the csv module reads it.

    A quote opens a cell only at the start of the cell, and inside a quoted cell a doubled
    quote is a literal quote.
    """
    inside = just_closed = False
    at_start = True
    for char in text:
        if inside:
            if char == '"':
                inside, just_closed = False, True
            continue
        if char == '"' and (at_start or just_closed):
            inside = True
        just_closed = False
        at_start = char in (delimiter, "\n", "\r")
    return inside


@contextmanager
def open_workbook(path: Path, settings: SendLogSettings) -> Iterator[Workbook]:
    """Open an XLSX workbook in read-only mode, with formulas read as their last values.

    Raises SendLogError for a file that is not a workbook or that is larger than the
    project's max_xlsx_bytes or max_xlsx_shared_strings.
    """
    # openpyxl 3.1 loads the whole shared-strings table when it opens a workbook, so memory
    # for XLSX grows with the number of distinct texts. The limits are checked first.
    _check_xlsx_size(path, settings)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, ValueError, SyntaxError) as exc:
        message = _("Send log {path} is not a valid XLSX workbook ({error}): {fix}.").format(
            path=path, error=exc, fix=_save_as_fix()
        )
        raise SendLogError(message, path) from exc
    try:
        yield workbook
    finally:
        workbook.close()


def _check_xlsx_size(path: Path, settings: SendLogSettings) -> None:
    try:
        with ZipFile(path) as archive:
            members = archive.infolist()
            uncompressed = sum(member.file_size for member in members)
            if uncompressed > settings.max_xlsx_bytes:
                message = _(
                    "Send log {path} is too large to read safely: it has {size} bytes "
                    "uncompressed, more than max_xlsx_bytes = {limit} in [projects.send_log]. "
                    "Export a shorter date range, save the report as CSV UTF-8, or raise "
                    "max_xlsx_bytes."
                ).format(path=path, size=f"{uncompressed:,}", limit=f"{settings.max_xlsx_bytes:,}")
                raise SendLogError(message, path)
            for member in members:
                if member.filename.lower().endswith("sharedstrings.xml"):
                    _check_shared_strings(archive, member, path, settings.max_xlsx_shared_strings)
    except BadZipFile as exc:
        message = _("Send log {path} is not a valid XLSX workbook ({error}): {fix}.").format(
            path=path, error=exc, fix=_save_as_fix()
        )
        raise SendLogError(message, path) from exc


def _check_shared_strings(archive: ZipFile, member: ZipInfo, path: Path, limit: int) -> None:
    """Count the texts of the shared-strings table as bytes stream by, stopping past ``limit``."""
    count = 0
    carry = b""
    with archive.open(member) as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            data = carry + chunk
            count += len(_SHARED_STRING.findall(data))
            if count > limit:
                message = _(
                    "Send log {path} is too large to read safely: it has more distinct texts "
                    "than max_xlsx_shared_strings = {limit} in [projects.send_log]. Export a "
                    "shorter date range, save the report as CSV UTF-8, or raise "
                    "max_xlsx_shared_strings."
                ).format(path=path, limit=f"{limit:,}")
                raise SendLogError(message, path)
            # An element start cut at the chunk's end is counted with the next chunk.
            cut = data.rfind(b"<", len(data) - _SHARED_STRING_TAG_BYTES)
            carry = data[cut:] if cut >= 0 else b""
            if carry and _SHARED_STRING.match(carry):
                carry = b""


def xlsx_records(workbook: Workbook, path: Path) -> Iterator[Record]:
    """Yield every row of the workbook's active sheet with its row number.

    Raises SendLogError when the sheet's XML is damaged.
    """
    sheet: Any = workbook.active
    if sheet is None or not hasattr(sheet, "reset_dimensions"):
        message = _("Send log {path} has no worksheet to read: {fix}.").format(
            path=path, fix=_save_as_fix()
        )
        raise SendLogError(message, path)

    # Some writers store a wrong sheet size, and openpyxl would stop at the stored last row.
    sheet.reset_dimensions()
    line = 0
    try:
        unsaved = _unsaved_formulas(sheet)
        for line, row in enumerate(sheet.iter_rows(), start=1):
            yield line, [_xlsx_value(cell, unsaved) for cell in row]
    except (SyntaxError, ValueError, KeyError, BadZipFile) as exc:
        message = _("Send log {path} is damaged after row {line} ({error}): {fix}.").format(
            path=path, line=line, error=exc, fix=_save_as_fix()
        )
        raise SendLogError(message, path, line=line + 1) from exc


def _unsaved_formulas(sheet: Any) -> frozenset[str]:
    """Return the coordinates of the sheet's cells that hold a formula but no saved value.

    openpyxl reads such a cell as empty when it reads saved values, so the sheet's XML is
    scanned for them. The XML parse runs only when the bytes contain a formula element.
    """
    # NOTE: _get_source is openpyxl 3.1's private accessor for a read-only sheet's XML, and
    # openpyxl's iterparse is the parser openpyxl itself reads the sheet with.
    with sheet._get_source() as source:
        if not _contains_formula(source):
            return frozenset()
    coordinates: set[str] = set()
    with sheet._get_source() as source:
        for _event, element in iterparse(source):
            if element.tag.rpartition("}")[2] != "c":
                continue
            children = {child.tag.rpartition("}")[2]: child for child in element}
            value = children.get("v")
            if "f" in children and (value is None or not value.text) and element.get("r"):
                coordinates.add(element.get("r", ""))
            element.clear()
    return frozenset(coordinates)


def _contains_formula(source: Any) -> bool:
    carry = b""
    while chunk := source.read(_CHUNK_SIZE):
        data = carry + chunk
        if _FORMULA.search(data):
            return True
        carry = data[-_SHARED_STRING_TAG_BYTES:]
    return False


def _xlsx_value(cell: Any, unsaved: frozenset[str]) -> Cell:
    """Return the cell's value, as a date when a date-only format hides that it has no time."""
    value: Cell = cell.value
    if value is None and unsaved and getattr(cell, "coordinate", None) in unsaved:
        return UnsavedFormula(cell.coordinate)
    if (
        isinstance(value, datetime)
        and value.time() == time(0)
        and is_datetime(cell.number_format) == "date"
    ):
        return value.date()
    return value
