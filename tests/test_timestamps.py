"""Printed dates and times read into aware UTC datetimes, around Madrid's summer-time changes.

In 2026, Madrid moves to summer time on Sunday 29 March (02:00 CET becomes 03:00 CEST) and
back on Sunday 25 October (03:00 CEST becomes 02:00 CET).
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.timestamps import parse_printed_time

MADRID = ZoneInfo("Europe/Madrid")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02/03/2026 15:05", utc("2026-03-02 14:05:00")),
        ("02/03/2026 15:05:07", utc("2026-03-02 14:05:07")),
        ("02-03-2026 15:05:07", utc("2026-03-02 14:05:07")),
        ("02.03.2026 15.05 h", utc("2026-03-02 14:05:00")),
        ("2/3/2026 - 9:05", utc("2026-03-02 08:05:00")),
        ("2026-03-02T15:05:07", utc("2026-03-02 14:05:07")),
        ("2026-03-02 15:05:07.250", utc("2026-03-02 14:05:07")),
        ("2 de marzo de 2026, 15:05:07", utc("2026-03-02 14:05:07")),
        ("lunes, 2 de marzo de 2026 a las 15:05", utc("2026-03-02 14:05:00")),
        ("3 de diciembre de 2026 10:15", utc("2026-12-03 09:15:00")),
        ("2 de març de 2026 a les 15:05", utc("2026-03-02 14:05:00")),
        ("25 d'octubre de 2026, 10:00", utc("2026-10-25 09:00:00")),
        ("25 d\u2019octubre de 2026, 10:00", utc("2026-10-25 09:00:00")),
        ("2 March 2026 15:05", utc("2026-03-02 14:05:00")),
        ("March 2, 2026 at 3:05 PM", utc("2026-03-02 14:05:00")),
        ("2 Mar 2026 12:05 a.m.", utc("2026-03-01 23:05:00")),
        ("2 dic. 2026 15:05", utc("2026-12-02 14:05:00")),
    ],
)
def test_printed_time_without_zone(text: str, expected: datetime) -> None:
    assert parse_printed_time(text, MADRID) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02/03/2026 15:05:07 +01:00", utc("2026-03-02 14:05:07")),
        ("02/03/2026 15:05:07 +0100", utc("2026-03-02 14:05:07")),
        ("02/03/2026 15:05:07 -05:00", utc("2026-03-02 20:05:07")),
        ("02/03/2026 15:05:07 GMT+1", utc("2026-03-02 14:05:07")),
        ("02/03/2026 15:05:07 (UTC-05:00)", utc("2026-03-02 20:05:07")),
        ("02/03/2026 15:05:07 UTC", utc("2026-03-02 15:05:07")),
        ("02/03/2026 15:05:07 GMT", utc("2026-03-02 15:05:07")),
        ("02/03/2026 15:05:07 CET", utc("2026-03-02 14:05:07")),
        ("02/07/2026 15:05:07 CEST", utc("2026-07-02 13:05:07")),
        ("02/03/2026 10:05:07 COT", utc("2026-03-02 15:05:07")),
        ("2026-03-02T15:05:07Z", utc("2026-03-02 15:05:07")),
        ("2026-03-02T15:05:07+01:00", utc("2026-03-02 14:05:07")),
        ("2 de marzo de 2026 10:05 (America/Bogota)", utc("2026-03-02 15:05:00")),
        ("3 Dec 2026 10:15:00 +0100", utc("2026-12-03 09:15:00")),
    ],
)
def test_printed_time_with_zone(text: str, expected: datetime) -> None:
    assert parse_printed_time(text, MADRID) == expected


def test_printed_time_zone_before_smtp_detail() -> None:
    text = "02/03/2026 15:05:07 UTC - 550 5.1.1 <a@correo.example>: User unknown"

    assert parse_printed_time(text, MADRID) == utc("2026-03-02 15:05:07")


def test_printed_time_default_zone_is_caller_zone() -> None:
    bogota = ZoneInfo("America/Bogota")

    assert parse_printed_time("02/03/2026 10:05", bogota) == utc("2026-03-02 15:05:00")


def test_printed_time_result_is_utc() -> None:
    parsed = parse_printed_time("02/03/2026 15:05 CET", MADRID)

    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("29/03/2026 01:59:59", utc("2026-03-29 00:59:59")),
        ("29/03/2026 03:00:00", utc("2026-03-29 01:00:00")),
        ("28/03/2026 12:00", utc("2026-03-28 11:00:00")),
        ("30/03/2026 12:00", utc("2026-03-30 10:00:00")),
        ("24/10/2026 12:00", utc("2026-10-24 10:00:00")),
        ("25/10/2026 01:59:59", utc("2026-10-24 23:59:59")),
        ("25/10/2026 03:00:00", utc("2026-10-25 02:00:00")),
        ("26/10/2026 12:00", utc("2026-10-26 11:00:00")),
    ],
)
def test_printed_time_around_summer_time_changes(text: str, expected: datetime) -> None:
    assert parse_printed_time(text, MADRID) == expected


def test_printed_time_skipped_hour_counts_in_winter_offset() -> None:
    assert parse_printed_time("29/03/2026 02:30", MADRID) == utc("2026-03-29 01:30:00")


def test_printed_time_repeated_hour_is_first_occurrence() -> None:
    assert parse_printed_time("25/10/2026 02:30", MADRID) == utc("2026-10-25 00:30:00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25/10/2026 02:30 CEST", utc("2026-10-25 00:30:00")),
        ("25/10/2026 02:30 CET", utc("2026-10-25 01:30:00")),
        ("25/10/2026 02:30 +02:00", utc("2026-10-25 00:30:00")),
        ("25/10/2026 02:30 +01:00", utc("2026-10-25 01:30:00")),
        ("29/03/2026 03:30 CEST", utc("2026-03-29 01:30:00")),
        ("29/03/2026 01:30 CET", utc("2026-03-29 00:30:00")),
    ],
)
def test_printed_zone_settles_summer_time_change(text: str, expected: datetime) -> None:
    assert parse_printed_time(text, MADRID) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Entregado",
        "3 de diciembre de 2026",
        "31/02/2026 10:00",
        "02/13/2026 10:00",
        "02/03/2026 25:00",
        "3 de brumario de 2026 10:00",
        "550 5.1.1 <a@correo.example>: User unknown",
    ],
)
def test_printed_time_unreadable(text: str) -> None:
    assert parse_printed_time(text, MADRID) is None


def test_printed_time_unknown_zone_word_uses_default() -> None:
    assert parse_printed_time("02/03/2026 15:05 horario", MADRID) == utc("2026-03-02 14:05:00")
