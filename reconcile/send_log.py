"""Read PACO's send log ("Informe notificaciones cartera (E-mail)"), one row per send and recipient.

The export format is not documented, so reading is liberal. The file may be CSV with ";", ","
or tab between cells, in UTF-8, UTF-16 or Windows-1252, or it may be XLSX. A title and a date
range may come before the header row, and headers match without regard to case, accents,
spaces or punctuation. What is yielded is strict: aware UTC send times, lowercase addresses,
and a RowError with the line number for every row or address that cannot be stored.
"""

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import chain, dropwhile, islice
from pathlib import Path

from openpyxl.utils.datetime import WINDOWS_EPOCH

from config.database import utcnow
from config.i18n import _
from config.settings import SEND_LOG_FIELDS, ProjectView, SendLogSettings
from reconcile.send_log_cells import (
    Cell,
    CellError,
    UnsavedFormula,
    cell_text,
    header_key,
    parse_lleida_copied,
    parse_recipients,
    parse_sent_at,
    unsaved_formula_reason,
)
from reconcile.send_log_formats import (
    CSV_DELIMITERS,
    FileFormat,
    Record,
    SendLogError,
    csv_records,
    detect_encoding,
    detect_format,
    open_workbook,
    xlsx_records,
)

__all__ = [
    "DEFAULT_HEADERS",
    "REQUIRED_FIELDS",
    "ColumnMatch",
    "RowError",
    "SendLogError",
    "SendRow",
    "match_columns",
    "read_matched_rows",
    "read_send_log",
]

# The headers of PACO's report, each followed by variant spellings that are also accepted. A
# project whose export names a column differently maps the field in [projects.send_log.columns].
DEFAULT_HEADERS: Mapping[str, tuple[str, ...]] = {
    "notification_type": ("Notificación enviada", "Tipo de notificación"),
    "negocio": ("Negocio",),
    "inmueble": ("Inmueble",),
    "client": ("Cliente",),
    "recipient": ("Correo cliente", "Correo electrónico cliente", "Email cliente"),
    "lleida_copied": ("Correo certificado Lleida", "Certificado Lleida"),
    "sent_at": ("Fecha de envío", "Fecha envío", "Fecha y hora de envío"),
    "subject": ("Asunto",),
    "external_id": ("Id envío", "Id de envío"),
    "message_id": ("Message-ID",),
}
REQUIRED_FIELDS = ("recipient", "sent_at", "subject")
HEADER_SCAN_ROWS = 30
MAX_EXTERNAL_ID_LENGTH = 255
MAX_MESSAGE_ID_LENGTH = 998

# Send dates outside [EARLIEST_SEND, import time + FUTURE_TOLERANCE] are typing mistakes in the
# year. They are rejected because a send stored in the future would count as pending in
# reconciliation yet stay out of every listing until that date. The tolerance covers a clock
# that runs a little behind PACO's and a send date written in a zone ahead of the project's.
EARLIEST_SEND = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SendRow:
    """One send to one recipient, as the send log lists it; ``sent_at`` is aware UTC.

    ``lleida_copied`` is None when the file has no Lleida.net column.
    """

    line: int
    recipient: str
    sent_at: datetime
    subject: str
    notification_type: str | None = None
    negocio: str | None = None
    inmueble: str | None = None
    client: str | None = None
    lleida_copied: bool | None = None
    external_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A row, or one address of a row, that cannot be stored, with the translated reason."""

    line: int
    reason: str

    def __str__(self) -> str:
        return _("line {line}: {reason}").format(line=self.line, reason=self.reason)


@dataclass(frozen=True)
class _Header:
    """A candidate header row: the field each matched column holds, by cell index."""

    line: int
    cells: tuple[str, ...] = ()
    columns: dict[str, int] = field(default_factory=dict)
    duplicates: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(text for text in self.cells if text)

    @property
    def is_complete(self) -> bool:
        return all(name in self.columns for name in REQUIRED_FIELDS)

    @property
    def rank(self) -> tuple[bool, int]:
        return self.is_complete, len(self.columns)


def read_send_log(
    path: Path, project: ProjectView, now: datetime | None = None
) -> Iterator[SendRow | RowError]:
    """Yield a SendRow for each recipient of each row of the send log, or a RowError.

    ``now`` (aware, default the current time) is the import time that bounds send dates:
    a row dated more than FUTURE_TOLERANCE after it is a RowError. Blank rows and repeated
    header rows yield nothing. Raises SendLogError, when iteration
    starts, for a file that cannot be read or whose header row lacks a required column, and
    later for a file that turns out to be damaged.
    """
    settings = project.settings.send_log
    names = _header_names(settings)
    if detect_format(path) is FileFormat.XLSX:
        with open_workbook(path, settings) as workbook:
            header, records = _locate_header(xlsx_records(workbook, path), names)
            _check_header(header, path, settings)
            reader = _RowReader(header, project, settings.date_format, workbook.epoch, now)
            yield from reader.read_all(records)
        return

    encoding = detect_encoding(path)
    delimiter, header = _choose_delimiter(path, encoding, names)
    _check_header(header, path, settings)
    records = dropwhile(
        lambda record: record[0] <= header.line, csv_records(path, encoding, delimiter)
    )
    reader = _RowReader(header, project, settings.date_format, WINDOWS_EPOCH, now)
    yield from reader.read_all(records)


@dataclass(frozen=True)
class ColumnMatch:
    """The field that each named column holds, for a source whose column names are known.

    A database query is such a source: its result columns play the part of the header row.
    """

    header: _Header
    settings: SendLogSettings

    @property
    def missing(self) -> list[str]:
        """The required fields that no column holds."""
        return [name for name in REQUIRED_FIELDS if name not in self.header.columns]

    @property
    def duplicates(self) -> tuple[str, ...]:
        """The fields that more than one column holds."""
        return self.header.duplicates

    def expected_name(self, field_name: str) -> str:
        """The column name that would hold ``field_name``."""
        return _expected_header(field_name, self.settings)


def match_columns(names: Sequence[str], settings: SendLogSettings) -> ColumnMatch:
    """Match column names to send-log fields the way file headers are matched."""
    return ColumnMatch(_match_header(0, names, _header_names(settings)), settings)


def read_matched_rows(
    match: ColumnMatch,
    records: Iterable[Record],
    project: ProjectView,
    now: datetime | None = None,
) -> Iterator[SendRow | RowError]:
    """Yield a SendRow per recipient of each record, or a RowError, as ``read_send_log`` does.

    The caller checks ``match.missing`` and ``match.duplicates`` first.
    """
    date_format = match.settings.date_format
    reader = _RowReader(match.header, project, date_format, WINDOWS_EPOCH, now)
    yield from reader.read_all(records)


def _header_names(settings: SendLogSettings) -> dict[str, str]:
    """Map each accepted header, reduced by header_key, to its field."""
    names: dict[str, str] = {}
    for name in SEND_LOG_FIELDS:
        if name not in settings.columns:
            names.update(dict.fromkeys(map(header_key, DEFAULT_HEADERS[name]), name))
    # A configured header wins over a default spelling of another field.
    for name, header in settings.columns.items():
        names[header_key(header)] = name
    return names


def _expected_header(name: str, settings: SendLogSettings) -> str:
    return settings.columns.get(name) or DEFAULT_HEADERS[name][0]


def _choose_delimiter(path: Path, encoding: str, names: dict[str, str]) -> tuple[str, _Header]:
    """Return the delimiter whose reading of the first rows gives the best header row.

    On a tie the earlier delimiter in CSV_DELIMITERS wins, so ";" beats ",".
    """
    candidates: list[tuple[str, _Header]] = []
    for delimiter in CSV_DELIMITERS:
        records = csv_records(path, encoding, delimiter)
        try:
            header = _scan_header(islice(records, HEADER_SCAN_ROWS), names)
        finally:
            records.close()
        candidates.append((delimiter, header))
    return max(candidates, key=lambda candidate: candidate[1].rank)


def _locate_header(
    records: Iterator[Record], names: dict[str, str]
) -> tuple[_Header, Iterator[Record]]:
    """Find the header among the first rows; return it and the records after it."""
    scanned = list(islice(records, HEADER_SCAN_ROWS))
    header = _scan_header(scanned, names)
    after = [record for record in scanned if record[0] > header.line]
    return header, chain(after, records)


def _scan_header(records: Iterable[Record], names: dict[str, str]) -> _Header:
    """Return the first row with every required column, or else the row with most columns."""
    best = _Header(line=0)
    for line, cells in records:
        candidate = _match_header(line, cells, names)
        if candidate.is_complete:
            return candidate
        if candidate.rank > best.rank or (not best.texts and candidate.texts):
            best = candidate
    return best


def _match_header(line: int, cells: Sequence[Cell], names: dict[str, str]) -> _Header:
    texts = tuple(cell_text(cell) or "" for cell in cells)
    columns: dict[str, int] = {}
    duplicates: list[str] = []
    for index, text in enumerate(texts):
        name = names.get(header_key(text))
        if name is None:
            continue
        if name in columns:
            duplicates.append(name)
            continue
        columns[name] = index
    return _Header(line, texts, columns, tuple(duplicates))


def _check_header(header: _Header, path: Path, settings: SendLogSettings) -> None:
    """Raise SendLogError unless the header has every required column, each only once."""
    if not header.texts:
        message = _(
            "Send log {path} is empty: its first {rows} rows hold no text. Export the report "
            "from PACO again and import the new file."
        ).format(path=path, rows=HEADER_SCAN_ROWS)
        raise SendLogError(message, path)
    missing = [name for name in REQUIRED_FIELDS if name not in header.columns]
    if missing:
        first = missing[0]
        message = _(
            "Send log {path} has no column for {fields} in its first {rows} rows. The closest "
            "header row is line {line}, with the headers {found}. If the report names a column "
            "differently, map it in the project's [projects.send_log.columns], for example "
            '{field} = "<header in the file>".'
        ).format(
            path=path,
            fields=", ".join(f"{name} ({_expected_header(name, settings)!r})" for name in missing),
            rows=HEADER_SCAN_ROWS,
            line=header.line,
            found=", ".join(repr(text) for text in header.texts) or _("none"),
            field=first,
        )
        raise SendLogError(message, path, line=header.line or None)
    if header.duplicates:
        name = header.duplicates[0]
        message = _(
            "Send log {path} has two columns for {field} on line {line}: rename or delete "
            "one of them, or map {field} to the header of the right one in "
            "[projects.send_log.columns]."
        ).format(path=path, field=name, line=header.line)
        raise SendLogError(message, path, line=header.line)


class _RowReader:
    """Turns the data rows under one header into SendRows and RowErrors."""

    def __init__(
        self,
        header: _Header,
        project: ProjectView,
        date_format: str | None,
        epoch: datetime,
        now: datetime | None,
    ) -> None:
        self._header = header
        self._zone: tzinfo = project.timezone
        self._latest = (now or utcnow()) + FUTURE_TOLERANCE
        self._date_format = date_format
        self._epoch = epoch
        self._required_header_keys = [
            header_key(header.cells[header.columns[name]]) for name in REQUIRED_FIELDS
        ]

    def read_all(self, records: Iterable[Record]) -> Iterator[SendRow | RowError]:
        for line, cells in records:
            if not self._is_blank(cells):
                yield from self.read(line, cells)

    def read(self, line: int, cells: Sequence[Cell]) -> Iterator[SendRow | RowError]:
        """Yield one SendRow per valid recipient, and a RowError for each problem found.

        A row that repeats the header, as exports split into pages do, yields nothing. It is
        looked for only among failing rows, because a header never contains a valid send date.
        """
        formula = self._unsaved_formula(cells)
        if formula is not None:
            yield RowError(line, unsaved_formula_reason(formula))
            return
        addresses, invalid = parse_recipients(self._cell(cells, "recipient"))
        if not addresses and not invalid:
            yield RowError(line, _("the recipient address is missing"))
            return
        try:
            first = self._send_row(line, cells, addresses[0] if addresses else "")
        except CellError as exc:
            if not self._repeats_header(cells):
                yield RowError(line, str(exc))
            return

        for item in invalid:
            reason = _("invalid recipient address {value!r}: write it as name@domain.example")
            yield RowError(line, reason.format(value=item))
        if addresses:
            yield first
        for address in addresses[1:]:
            yield dataclasses.replace(first, recipient=address)

    def _send_row(self, line: int, cells: Sequence[Cell], recipient: str) -> SendRow:
        """Read the row's fields for ``recipient``; raise CellError for the first invalid one."""
        lleida_copied = None
        if "lleida_copied" in self._header.columns:
            lleida_copied = parse_lleida_copied(self._cell(cells, "lleida_copied"))
        return SendRow(
            line=line,
            recipient=recipient,
            sent_at=self._sent_at(cells),
            subject=self._text(cells, "subject") or "",
            notification_type=self._text(cells, "notification_type"),
            negocio=self._text(cells, "negocio"),
            inmueble=self._text(cells, "inmueble"),
            client=self._text(cells, "client"),
            lleida_copied=lleida_copied,
            external_id=self._external_id(cells),
            message_id=self._message_id(cells),
        )

    def _sent_at(self, cells: Sequence[Cell]) -> datetime:
        cell = self._cell(cells, "sent_at")
        sent_at = parse_sent_at(cell, self._zone, self._date_format, self._epoch)
        if sent_at < EARLIEST_SEND:
            message = _(
                "the send date {value!r} is before the year {year}: fix the year in the send log"
            ).format(value=cell_text(cell), year=EARLIEST_SEND.year)
            raise CellError(message)
        if sent_at > self._latest:
            message = _(
                "the send date {value!r} is in the future (after {latest}): fix the date in the "
                "send log and import it again"
            ).format(
                value=cell_text(cell),
                latest=self._latest.astimezone(self._zone).isoformat(sep=" ", timespec="minutes"),
            )
            raise CellError(message)
        return sent_at

    def _unsaved_formula(self, cells: Sequence[Cell]) -> UnsavedFormula | None:
        for name in self._header.columns:
            cell = self._cell(cells, name)
            if isinstance(cell, UnsavedFormula):
                return cell
        return None

    def _cell(self, cells: Sequence[Cell], name: str) -> Cell:
        index = self._header.columns.get(name)
        if index is None or index >= len(cells):
            return None
        return cells[index]

    def _text(self, cells: Sequence[Cell], name: str) -> str | None:
        return cell_text(self._cell(cells, name))

    def _external_id(self, cells: Sequence[Cell]) -> str | None:
        text = self._text(cells, "external_id")
        if text is not None and len(text) > MAX_EXTERNAL_ID_LENGTH:
            message = _("the send id {value!r} is longer than {limit} characters").format(
                value=text[:40] + "...", limit=MAX_EXTERNAL_ID_LENGTH
            )
            raise CellError(message)
        return text

    def _message_id(self, cells: Sequence[Cell]) -> str | None:
        """Return the Message-ID in its usual <id@host> form."""
        text = self._text(cells, "message_id")
        if text is None:
            return None
        if not text.startswith("<"):
            text = f"<{text}>"
        if len(text) > MAX_MESSAGE_ID_LENGTH:
            message = _("the Message-ID {value!r} is longer than {limit} characters").format(
                value=text[:40] + "...", limit=MAX_MESSAGE_ID_LENGTH
            )
            raise CellError(message)
        return text

    @staticmethod
    def _is_blank(cells: Sequence[Cell]) -> bool:
        return all(cell_text(cell) is None for cell in cells)

    def _repeats_header(self, cells: Sequence[Cell]) -> bool:
        keys = [header_key(self._text(cells, name) or "") for name in REQUIRED_FIELDS]
        return keys == self._required_header_keys
