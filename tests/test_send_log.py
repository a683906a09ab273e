"""Reading PACO's send log: file formats, encodings, header rows, column mapping and bad rows."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zipfile import ZipFile

import pytest

from config.settings import ProjectView, Settings
from reconcile.send_log import RowError, SendLogError, SendRow, read_send_log
from tests.send_log_samples import (
    HEADERS,
    TITLE_ROWS,
    csv_text,
    make_project,
    row,
    write_csv,
    write_xlsx,
)

MARCH_5_2045_UTC = datetime(2024, 3, 5, 20, 45, tzinfo=UTC)


@pytest.fixture
def project(make_settings: Callable[..., Settings]) -> ProjectView:
    return make_project(make_settings)


def sends(path: Path, project: ProjectView) -> list[SendRow]:
    items = list(read_send_log(path, project))
    assert all(isinstance(item, SendRow) for item in items), items
    return [item for item in items if isinstance(item, SendRow)]


def errors(path: Path, project: ProjectView) -> list[RowError]:
    return [item for item in read_send_log(path, project) if isinstance(item, RowError)]


def test_csv_semicolon(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row()], delimiter=";")

    (send,) = sends(path, project)

    assert send == SendRow(
        line=2,
        recipient="ana@example.co",
        sent_at=MARCH_5_2045_UTC,
        subject="Estado de cuenta marzo",
        notification_type="Estado de cuenta",
        negocio="N-101",
        inmueble="T1-101",
        client="Ana Peñaloza",
        lleida_copied=True,
    )


def test_csv_comma(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(), row("luis@example.co")], ",")

    result = sends(path, project)

    assert [send.recipient for send in result] == ["ana@example.co", "luis@example.co"]
    assert result[0].client == "Ana Peñaloza"


def test_csv_tab(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.txt", [HEADERS, row()], delimiter="\t")

    (send,) = sends(path, project)

    assert send.subject == "Estado de cuenta marzo"


def test_utf8_with_bom(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(client="Asunción")], encoding="utf-8-sig")

    (send,) = sends(path, project)

    assert send.client == "Asunción"
    assert send.notification_type == "Estado de cuenta"


def test_utf8_without_bom(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(client="Asunción")], encoding="utf-8")

    (send,) = sends(path, project)

    assert send.client == "Asunción"


def test_utf16_with_bom(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.txt", [HEADERS, row(client="Asunción")], "\t", "utf-16")

    (send,) = sends(path, project)

    assert send.client == "Asunción"


def test_windows_1252_accents(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(client="Asunción Peñaloza", subject="Cobro \u2013 cuota nº 3")]
    path = write_csv(tmp_path / "log.csv", rows, encoding="cp1252")

    (send,) = sends(path, project)

    assert send.client == "Asunción Peñaloza"
    assert send.subject == "Cobro \u2013 cuota nº 3"
    assert send.lleida_copied is True


def test_mixed_encodings_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.csv"
    utf8_part = ";".join(HEADERS) + "\r\n" + ";".join(row(client="Asunción")) + "\r\n"
    cp1252_part = ";".join(row(client="Peñaloza")) + "\r\n"
    path.write_bytes(utf8_part.encode("utf-8") + cp1252_part.encode("cp1252"))

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert caught.value.line == 3
    assert "line 1" in str(caught.value)
    assert "line 3" in str(caught.value)


def test_neither_encoding_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.csv"
    text = ";".join(HEADERS) + "\r\n"
    path.write_bytes(
        text.encode("cp1252") + b"Estado;N-1;T1;Ana\x81;a@example.co;;05/03/2024 10:00;x\r\n"
    )

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert caught.value.line == 2


def test_xlsx_datetime_cells(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(sent_at=datetime(2024, 3, 5, 15, 45), copied=True)]  # noqa: DTZ001
    path = write_xlsx(tmp_path / "log.xlsx", rows)

    (send,) = sends(path, project)

    assert send.sent_at == MARCH_5_2045_UTC
    assert send.lleida_copied is True
    assert send.line == 2


def test_xlsx_text_dates(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(sent_at="05/03/2024 3:45 p. m."), row(sent_at="2024-03-05 15:45")]
    path = write_xlsx(tmp_path / "log.xlsx", rows)

    result = sends(path, project)

    assert [send.sent_at for send in result] == [MARCH_5_2045_UTC, MARCH_5_2045_UTC]


def test_xlsx_number_cells_as_text(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(negocio=1234, copied=1, sent_at=45356.65625)]
    path = write_xlsx(tmp_path / "log.xlsx", rows)

    (send,) = sends(path, project)

    assert send.negocio == "1234"
    assert send.lleida_copied is True
    assert send.sent_at == MARCH_5_2045_UTC


def test_xlsx_date_only_cell_rejected(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(sent_at=datetime(2024, 3, 5))]  # noqa: DTZ001
    path = write_xlsx(tmp_path / "log.xlsx", rows, number_formats={"G2": "dd/mm/yyyy"})

    (error,) = errors(path, project)

    assert error.line == 2
    assert "no time of day" in error.reason


def test_xlsx_title_rows(tmp_path: Path, project: ProjectView) -> None:
    path = write_xlsx(tmp_path / "log.xlsx", [*TITLE_ROWS, HEADERS, row(), row("x@example.co")])

    result = sends(path, project)

    assert [send.line for send in result] == [5, 6]


def test_csv_title_rows(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [*TITLE_ROWS, HEADERS, row()])

    (send,) = sends(path, project)

    assert send.line == 5


@pytest.mark.parametrize(
    "variant",
    [
        str.upper,
        str.lower,
        lambda header: f"  {header}  ",
        lambda header: header.replace("í", "i").replace("ó", "o"),
        lambda header: header.replace(" ", "_"),
        lambda header: header + ":",
    ],
)
def test_header_variants(
    tmp_path: Path, project: ProjectView, variant: Callable[[str], str]
) -> None:
    path = write_csv(tmp_path / "log.csv", [[variant(h) for h in HEADERS], row()])

    (send,) = sends(path, project)

    assert send.sent_at == MARCH_5_2045_UTC
    assert send.lleida_copied is True


def test_custom_column_mapping(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    columns = {"recipient": "Email destinatario", "sent_at": "Enviado", "external_id": "Código"}
    project = make_project(make_settings, send_log={"columns": columns})
    headers = ["Código", "Email destinatario", "Enviado", "Asunto"]
    path = write_csv(
        tmp_path / "log.csv", [headers, ["E-77", "ana@example.co", "05/03/2024 15:45", "Hola"]]
    )

    (send,) = sends(path, project)

    assert send.external_id == "E-77"
    assert send.recipient == "ana@example.co"
    assert send.lleida_copied is None
    assert send.negocio is None


def test_custom_date_format(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    project = make_project(make_settings, send_log={"date_format": "%Y%m%d %H%M"})
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(sent_at="20240305 1545")])

    (send,) = sends(path, project)

    assert send.sent_at == MARCH_5_2045_UTC


def test_project_timezone(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    project = make_project(make_settings, timezone="Europe/Madrid")
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(sent_at="05/03/2024 15:45")])

    (send,) = sends(path, project)

    assert send.sent_at == datetime(2024, 3, 5, 14, 45, tzinfo=UTC)


def test_missing_column_named(tmp_path: Path, project: ProjectView) -> None:
    headers = [header for header in HEADERS if header != "Fecha de envío"]
    path = write_csv(tmp_path / "log.csv", [*TITLE_ROWS, headers, row()[:7]])

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    message = str(caught.value)
    assert "sent_at ('Fecha de envío')" in message
    assert "'Correo cliente'" in message
    assert "[projects.send_log.columns]" in message
    assert caught.value.line == 4
    assert caught.value.path == path


def test_empty_file_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"")

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "is empty" in str(caught.value)


def test_duplicate_column_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [[*HEADERS, "ASUNTO"], [*row(), "otro"]])

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "subject" in str(caught.value)
    assert caught.value.line == 1


def test_missing_file_rejected(tmp_path: Path, project: ProjectView) -> None:
    with pytest.raises(SendLogError) as caught:
        list(read_send_log(tmp_path / "nada.csv", project))

    assert "nada.csv" in str(caught.value)


def test_old_xls_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500))

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert ".xlsx" in str(caught.value)


def test_html_export_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.xls"
    path.write_text("<html><body><table><tr><td>Asunto</td></tr></table></body></html>")

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "HTML" in str(caught.value)


def test_damaged_xlsx_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = tmp_path / "log.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(100))

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "XLSX" in str(caught.value)


def test_multi_address_cell(tmp_path: Path, project: ProjectView) -> None:
    cell = 'Ana <ANA@Example.co>; luis@example.co, "Peñaloza, Ana" <ana.p@example.co>'
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(cell)])

    result = sends(path, project)

    assert [send.recipient for send in result] == [
        "ana@example.co",
        "luis@example.co",
        "ana.p@example.co",
    ]
    assert {send.line for send in result} == {2}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("sí", True),
        ("si", True),
        ("SÍ", True),
        ("yes", True),
        ("true", True),
        ("1", True),
        ("x", True),
        ("✓", True),
        ("✔", True),
        ("no", False),
        ("false", False),
        ("0", False),
        ("", False),
    ],
)
def test_lleida_column_values(
    tmp_path: Path, project: ProjectView, cell: str, expected: bool
) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(copied=cell)])

    (send,) = sends(path, project)

    assert send.lleida_copied is expected


def test_lleida_column_absent(tmp_path: Path, project: ProjectView) -> None:
    headers = [header for header in HEADERS if header != "Correo certificado Lleida"]
    values = [value for value in row() if value != "sí"]
    path = write_csv(tmp_path / "log.csv", [headers, values])

    (send,) = sends(path, project)

    assert send.lleida_copied is None


def test_bad_rows_keep_good_ones(tmp_path: Path, project: ProjectView) -> None:
    rows = [
        *TITLE_ROWS,
        HEADERS,
        row("ana@example.co"),
        row(""),
        row("sin-arroba"),
        row(sent_at="31/02/2024 10:00"),
        row(copied="tal vez"),
        row("ana@example.co; roto@"),
        row("luis@example.co"),
    ]
    path = write_csv(tmp_path / "log.csv", rows)

    items = list(read_send_log(path, project))

    good = [(item.line, item.recipient) for item in items if isinstance(item, SendRow)]
    bad = [(item.line, item.reason) for item in items if isinstance(item, RowError)]
    assert good == [(5, "ana@example.co"), (10, "ana@example.co"), (11, "luis@example.co")]
    assert [line for line, _reason in bad] == [6, 7, 8, 9, 10]
    assert "missing" in bad[0][1]
    assert "'sin-arroba'" in bad[1][1]
    assert "'31/02/2024 10:00'" in bad[2][1]
    assert "'tal vez'" in bad[3][1]
    assert "'roto@'" in bad[4][1]


def test_line_numbers_after_multiline_cell(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(subject="Estado de cuenta\nmarzo"), row(sent_at="ayer")]
    path = write_csv(tmp_path / "log.csv", rows)

    items = list(read_send_log(path, project))

    assert [item.line for item in items] == [2, 4]
    assert isinstance(items[1], RowError)


def test_row_error_text(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row("")])

    (error,) = errors(path, project)

    assert str(error) == "line 2: the recipient address is missing"


def test_blank_and_repeated_header_rows_skipped(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(), [""] * 8, [], HEADERS, row("luis@example.co")]
    path = write_csv(tmp_path / "log.csv", rows)

    result = sends(path, project)

    assert [send.line for send in result] == [2, 6]


def test_message_id_bracketed(tmp_path: Path, project: ProjectView) -> None:
    headers = [*HEADERS, "Id envío", "Message-ID"]
    path = write_csv(tmp_path / "log.csv", [headers, [*row(), "77", "abc@paco.example"]])

    (send,) = sends(path, project)

    assert send.external_id == "77"
    assert send.message_id == "<abc@paco.example>"


def test_unclosed_quote_rejected(tmp_path: Path, project: ProjectView) -> None:
    text = csv_text([HEADERS]) + '"Cliente 1;' + csv_text([row()] * 5)
    path = tmp_path / "log.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert caught.value.line == 2
    assert "never closed" in str(caught.value)
    assert "line 2" in str(caught.value)


def test_closed_multiline_last_cell_kept(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(subject='Estado "de"\ncuenta')])

    (send,) = sends(path, project)

    assert send.subject == 'Estado "de"\ncuenta'


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom(tmp_path: Path, project: ProjectView, encoding: str) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row()], encoding=encoding)

    (send,) = sends(path, project)

    assert send.client == "Ana Peñaloza"
    assert send.sent_at == MARCH_5_2045_UTC


@pytest.mark.parametrize("sent_at", ["31/12/9999 23:59", "01/01/0001 00:00 +14:00"])
def test_out_of_range_date_one_row(tmp_path: Path, project: ProjectView, sent_at: str) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(sent_at=sent_at), row("luis@example.co")])

    items = list(read_send_log(path, project))

    assert [type(item) for item in items] == [RowError, SendRow]
    assert items[0].line == 2
    assert isinstance(items[0], RowError)
    assert "is out of range in UTC" in items[0].reason


def test_future_date_rejected(tmp_path: Path, project: ProjectView) -> None:
    now = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
    rows = [HEADERS, row(sent_at="31/12/9999 18:00"), row(sent_at="07/03/2024 06:00"), row()]
    path = write_csv(tmp_path / "log.csv", rows)

    items = list(read_send_log(path, project, now))

    assert [type(item) for item in items] == [RowError, SendRow, SendRow]
    assert isinstance(items[0], RowError)
    assert "'31/12/9999 18:00' is in the future" in items[0].reason


def test_year_before_2000_rejected(tmp_path: Path, project: ProjectView) -> None:
    path = write_csv(tmp_path / "log.csv", [HEADERS, row(sent_at="05/03/1924 15:45")])

    (error,) = errors(path, project)

    assert "'05/03/1924 15:45' is before the year 2000" in error.reason


def test_xlsx_formula_without_value(tmp_path: Path, project: ProjectView) -> None:
    rows = [HEADERS, row(sent_at="=NOW()"), row(recipient="=A1"), row()]
    path = write_xlsx(tmp_path / "log.xlsx", rows)

    items = list(read_send_log(path, project))

    assert [type(item) for item in items] == [RowError, RowError, SendRow]
    assert "cell G2 holds a formula without a saved value" in str(items[0])
    assert "cell E3 holds a formula without a saved value" in str(items[1])


def test_xlsx_shared_strings_capped(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    project = make_project(make_settings, send_log={"max_xlsx_shared_strings": 1000})
    path = write_xlsx(tmp_path / "log.xlsx", [HEADERS, row()])
    entries = "".join(f"<si><t>Asunto {number}</t></si>" for number in range(1001))
    with ZipFile(path, "a") as archive:
        archive.writestr("xl/sharedStrings.xml", f"<sst>{entries}</sst>")

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "more distinct texts than max_xlsx_shared_strings = 1,000" in str(caught.value)


def test_xlsx_uncompressed_size_capped(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    project = make_project(make_settings, send_log={"max_xlsx_bytes": 1024 * 1024})
    rows = [HEADERS, *(row(subject="x" * 1000 + str(number)) for number in range(1100))]
    path = write_xlsx(tmp_path / "log.xlsx", rows)

    with pytest.raises(SendLogError) as caught:
        list(read_send_log(path, project))

    assert "more than max_xlsx_bytes = 1,048,576" in str(caught.value)
