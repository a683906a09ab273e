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
from pathlib import Path
from typing import Any, TypeAlias
from zipfile import BadZipFile

from openpyxl import load_workbook
from openpyxl.styles.numbers import is_datetime
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook

from config.errors import AcuseError
from config.i18n import _
from reconcile.send_log_cells import Cell

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
        start = handle.read(2)
    if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"

    invalid_line = _first_invalid_utf8_line(path)
    if invalid_line is None:
        return "utf-8-sig"
    _check_windows_1252(path, invalid_line)
    return "cp1252"


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
    start_line = 1
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for cells in reader:
                yield start_line, cells
                start_line = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            message = _("Send log {path} cannot be read as CSV at line {line}: {error}.").format(
                path=path, line=start_line, error=exc
            )
            raise SendLogError(message, path, line=start_line) from exc


@contextmanager
def open_workbook(path: Path) -> Iterator[Workbook]:
    """Open an XLSX workbook in read-only mode, with formulas read as their last values."""
    # NOTE: openpyxl 3.1 loads the whole shared-strings table when it opens a workbook, so
    # memory for XLSX grows with the number of distinct texts. CSV stays bounded.
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
        for line, row in enumerate(sheet.iter_rows(), start=1):
            yield line, [_xlsx_value(cell) for cell in row]
    except (SyntaxError, ValueError, KeyError, BadZipFile) as exc:
        message = _("Send log {path} is damaged after row {line} ({error}): {fix}.").format(
            path=path, line=line, error=exc, fix=_save_as_fix()
        )
        raise SendLogError(message, path, line=line + 1) from exc


def _xlsx_value(cell: Any) -> Cell:
    """Return the cell's value, as a date when a date-only format hides that it has no time."""
    value: Cell = cell.value
    if (
        isinstance(value, datetime)
        and value.time() == time(0)
        and is_datetime(cell.number_format) == "date"
    ):
        return value.date()
    return value
