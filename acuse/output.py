"""Writing query results as a table for people, or as JSON or CSV for scripts.

A table speaks the user's language. JSON and CSV always use the same English keys and state
codes, whatever the locale, and times in ISO 8601 with the project's offset.

Stored text comes from mail and send logs that others write, so no output format passes control
or bidirectional characters through as they are: a table shows them as visible escapes, CSV
escapes them and defuses spreadsheet formulas, and JSON writes them as ``\\u`` escapes, which
keeps the value intact for a script.
"""

import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from config.text_safety import UNSAFE_CHARACTERS, escape_unsafe, spreadsheet_cell


class OutputFormat(StrEnum):
    """How a query prints its rows."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class Column:
    """One column: the stable key for scripts and the heading people read."""

    key: str
    heading: str


def console(stream: TextIO | None = None) -> Console:
    """A rich console; when output goes to a file or pipe, lines are wide enough not to wrap."""
    stream = stream or sys.stdout
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=240, no_color=True)


def json_text(value: Any) -> str:
    """Serialise ``value`` as indented JSON with every unsafe character written as ``\\uXXXX``.

    ``json`` already escapes the C0 controls inside strings, and the line breaks of the
    indentation must stay as they are. Every other unsafe character occurs only inside a
    string, where the ``\\u`` form decodes to the same value.
    """
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return UNSAFE_CHARACTERS.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    character = match.group()
    return character if character < " " else f"\\u{ord(character):04x}"


def table_cell(value: Any) -> Text:
    """Build a table cell that shows ``value`` literally: no rich markup, escaped controls."""
    return Text("" if value is None else escape_unsafe(str(value)))


def write_rows(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[Column],
    output_format: OutputFormat,
    *,
    human_rows: Iterable[dict[str, Any]] | None = None,
    title: str | None = None,
    stream: TextIO | None = None,
) -> int:
    """Write ``rows`` (for scripts) or ``human_rows`` (for the table) and return the row count."""
    stream = stream or sys.stdout
    if output_format is OutputFormat.JSON:
        materialized = list(rows)
        stream.write(json_text(materialized))
        stream.write("\n")
        return len(materialized)

    if output_format is OutputFormat.CSV:
        writer = csv.DictWriter(
            stream, fieldnames=[column.key for column in columns], extrasaction="ignore"
        )
        writer.writeheader()
        written = 0
        for row in rows:
            writer.writerow({key: spreadsheet_cell(value) for key, value in row.items()})
            written += 1
        return written

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column.heading, overflow="fold")
    written = 0
    for row in human_rows if human_rows is not None else rows:
        table.add_row(*(table_cell(row.get(column.key)) for column in columns))
        written += 1
    console(stream).print(table)
    return written


def write_fields(fields: Sequence[tuple[str, Any]], stream: TextIO | None = None) -> None:
    """Write ``heading: value`` lines, aligned, for a single record."""
    stream = stream or sys.stdout
    width = max((len(heading) for heading, _value in fields), default=0)
    for heading, value in fields:
        shown = "" if value is None else escape_unsafe(str(value))
        stream.write(f"{heading.ljust(width)}  {shown}\n")
