"""Invented send-log files for the send-log tests, written as PACO's report might export them."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from config.settings import ProjectView, Settings, project_view

HEADERS = [
    "Notificación enviada",
    "Negocio",
    "Inmueble",
    "Cliente",
    "Correo cliente",
    "Correo certificado Lleida",
    "Fecha de envío",
    "Asunto",
]
TITLE_ROWS = [
    ["Informe notificaciones cartera (E-mail)"],
    ["Desde: 01/03/2024 Hasta: 31/03/2024"],
    [],
]


def row(
    recipient: str = "ana@example.co",
    sent_at: Any = "05/03/2024 15:45",
    subject: str = "Estado de cuenta marzo",
    *,
    negocio: Any = "N-101",
    inmueble: str = "T1-101",
    client: str = "Ana Peñaloza",
    copied: Any = "sí",
    notification: str = "Estado de cuenta",
) -> list[Any]:
    """One data row in the order of HEADERS."""
    return [notification, negocio, inmueble, client, recipient, copied, sent_at, subject]


def csv_text(rows: Sequence[Sequence[Any]], delimiter: str = ";") -> str:
    """Rows as CSV text, quoting every cell that needs it."""
    lines = []
    for cells in rows:
        quoted = [_quote(str(cell), delimiter) for cell in cells]
        lines.append(delimiter.join(quoted))
    return "\r\n".join(lines) + "\r\n"


def _quote(cell: str, delimiter: str) -> str:
    if any(char in cell for char in (delimiter, '"', "\n", ";", ",")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def write_csv(
    path: Path,
    rows: Sequence[Sequence[Any]],
    delimiter: str = ";",
    encoding: str = "utf-8",
) -> Path:
    path.write_bytes(csv_text(rows, delimiter).encode(encoding))
    return path


def write_xlsx(
    path: Path, rows: Sequence[Sequence[Any]], number_formats: dict[str, str] | None = None
) -> Path:
    """Write rows to the first sheet; ``number_formats`` maps a cell ("G4") to its format."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for cells in rows:
        sheet.append(list(cells))
    for coordinate, number_format in (number_formats or {}).items():
        sheet[coordinate].number_format = number_format
    workbook.save(path)
    return path


def make_project(
    make_settings: Callable[..., Settings], code: str = "TDP2", **project: Any
) -> ProjectView:
    """Build a project with the given settings; its zone is America/Bogota unless set."""
    settings = make_settings(projects=[{"code": code, "name": "Torres del Parque", **project}])
    return project_view(settings, code)
