"""Cell values of the send log: send times, recipient addresses, the Lleida.net flag, headers."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from reconcile.send_log_cells import (
    CellError,
    cell_text,
    header_key,
    parse_lleida_copied,
    parse_recipients,
    parse_sent_at,
)

BOGOTA = ZoneInfo("America/Bogota")
MADRID = ZoneInfo("Europe/Madrid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("05/03/2024 15:45", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("05/03/2024 15:45:30", datetime(2024, 3, 5, 20, 45, 30, tzinfo=UTC)),
        ("5/3/2024 3:45 p. m.", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("05/03/2024 03:45:10 a. m.", datetime(2024, 3, 5, 8, 45, 10, tzinfo=UTC)),
        ("05/03/2024 3:45\u00a0p.\u00a0m.", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("05/03/2024 3:45 PM", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("05/03/2024 12:05 a.m.", datetime(2024, 3, 5, 5, 5, tzinfo=UTC)),
        ("05/03/2024 12:05 p.m.", datetime(2024, 3, 5, 17, 5, tzinfo=UTC)),
        ("05-03-2024 15:45", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("2024-03-05T15:45:00", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("2024-03-05 15:45", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("2024-03-05T20:45:00Z", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("2024-03-05 15:45:00-05:00", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
        ("  05/03/2024   15:45  ", datetime(2024, 3, 5, 20, 45, tzinfo=UTC)),
    ],
)
def test_sent_at_accepted_forms(text: str, expected: datetime) -> None:
    parsed = parse_sent_at(text, BOGOTA)

    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "31/02/2024 10:00",
        "05/13/2024 10:00",
        "05/03/2024 13:45 p. m.",
        "05/03/2024 25:00",
        "mañana",
        "45356.65",
    ],
)
def test_sent_at_invalid_text(text: str) -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at(text, BOGOTA)

    assert text in str(caught.value)


@pytest.mark.parametrize("text", ["05/03/2024", "2024-03-05"])
def test_sent_at_without_time(text: str) -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at(text, BOGOTA)

    assert "no time of day" in str(caught.value)


@pytest.mark.parametrize("cell", [None, "", "   "])
def test_sent_at_missing(cell: str | None) -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at(cell, BOGOTA)

    assert "missing" in str(caught.value)


def test_sent_at_excel_datetime_is_local() -> None:
    parsed = parse_sent_at(datetime(2024, 3, 5, 15, 45), BOGOTA)  # noqa: DTZ001

    assert parsed == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)


def test_sent_at_excel_date_rejected() -> None:
    with pytest.raises(CellError):
        parse_sent_at(date(2024, 3, 5), BOGOTA)


def test_sent_at_excel_serial_number() -> None:
    # 45356.65625 is 5 March 2024 at 15:45 in Excel's 1900 date system.
    parsed = parse_sent_at(45356.65625, BOGOTA)

    assert parsed == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)


def test_sent_at_bogota_ignores_madrid_spring_change() -> None:
    # Madrid skips 02:00-03:00 on 31 March 2024; Bogotá stays at UTC-5 all year.
    parsed = parse_sent_at("31/03/2024 02:30", BOGOTA)

    assert parsed == datetime(2024, 3, 31, 7, 30, tzinfo=UTC)


def test_sent_at_bogota_ignores_madrid_autumn_change() -> None:
    # Madrid lives 02:00-03:00 twice on 27 October 2024.
    parsed = parse_sent_at("27/10/2024 02:30", BOGOTA)

    assert parsed == datetime(2024, 10, 27, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-31T03:30:00+02:00", datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
        ("2024-03-31T01:30:00+01:00", datetime(2024, 3, 31, 0, 30, tzinfo=UTC)),
        ("27/10/2024 02:30 +02:00", datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),
        ("27/10/2024 02:30 +0100", datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
        ("27/10/2024 02:30 Z", datetime(2024, 10, 27, 2, 30, tzinfo=UTC)),
    ],
)
def test_sent_at_explicit_offset_honoured(text: str, expected: datetime) -> None:
    assert parse_sent_at(text, BOGOTA) == expected


def test_sent_at_skipped_local_time_rejected() -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at("31/03/2024 02:30", MADRID)

    assert "does not exist" in str(caught.value)


def test_sent_at_repeated_local_time_rejected() -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at("27/10/2024 02:30", MADRID)

    assert "twice" in str(caught.value)


def test_sent_at_madrid_summer_time() -> None:
    parsed = parse_sent_at("01/07/2024 12:00", MADRID)

    assert parsed == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


def test_sent_at_configured_format() -> None:
    parsed = parse_sent_at("03/05/2024 15:45", BOGOTA, date_format="%m/%d/%Y %H:%M")

    assert parsed == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)


def test_sent_at_configured_format_mismatch() -> None:
    with pytest.raises(CellError) as caught:
        parse_sent_at("2024-03-05 15:45", BOGOTA, date_format="%m/%d/%Y %H:%M")

    assert "%m/%d/%Y %H:%M" in str(caught.value)


def test_recipients_split_and_lowercased() -> None:
    cell = 'ana@example.co; Luis Gómez <LUIS@Example.CO>, "Peñaloza, Ana" <ana.p@example.co>'

    valid, invalid = parse_recipients(cell)

    assert valid == ["ana@example.co", "luis@example.co", "ana.p@example.co"]
    assert invalid == []


def test_recipients_line_breaks_separate() -> None:
    valid, _invalid = parse_recipients("ana@example.co\nluis@example.co")

    assert valid == ["ana@example.co", "luis@example.co"]


def test_recipients_duplicates_once() -> None:
    valid, _invalid = parse_recipients("ana@example.co; ANA@example.co;")

    assert valid == ["ana@example.co"]


def test_recipients_invalid_kept_apart() -> None:
    valid, invalid = parse_recipients("ana@example.co; sin correo; luis@example")

    assert valid == ["ana@example.co"]
    assert invalid == ["sin correo", "luis@example"]


def test_recipients_empty_cell() -> None:
    assert parse_recipients("  ") == ([], [])


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("sí", True),
        ("Sí", True),
        ("SI", True),
        ("si", True),
        ("yes", True),
        ("TRUE", True),
        ("Verdadero", True),
        ("1", True),
        ("x", True),
        ("X", True),
        ("✓", True),
        ("✔", True),
        ("✔\ufe0f", True),
        (True, True),
        (1, True),
        (1.0, True),
        ("no", False),
        ("No", False),
        ("false", False),
        ("FALSO", False),
        ("0", False),
        (False, False),
        (0, False),
        ("", False),
        ("  ", False),
        (None, False),
    ],
)
def test_lleida_copied_values(cell: object, expected: bool) -> None:
    assert parse_lleida_copied(cell) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["quizás", "2", 2, "pendiente"])
def test_lleida_copied_invalid(cell: object) -> None:
    with pytest.raises(CellError):
        parse_lleida_copied(cell)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header",
    ["Fecha de envío", "FECHA DE ENVIO", "  fecha de envío ", "Fecha_de_Envío", "fecha de envío:"],
)
def test_header_key_variants(header: str) -> None:
    assert header_key(header) == "fechadeenvio"


def test_cell_text_whole_float() -> None:
    assert cell_text(1234.0) == "1234"


def test_cell_text_nfc() -> None:
    assert cell_text("Asuncio\u0301n") == "Asunción"
