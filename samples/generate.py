"""Write the demo samples: a PACO send log and the evidence mailbox that belongs to it.

Run from the repository root with ``.venv/bin/python samples/generate.py``. Every person, address,
number and certificate is invented. The sends cover every state acuse knows when judged at
DEMO_AS_OF: certified (with Spanish, Catalan and English certificates, attached, embedded in
another PDF, declared as octet-stream and inside a forwarded message), delivery failed, rejected,
missing, not copied to Lleida.net, pending and ambiguous. The mailbox also holds evidence for a
send that is not in the log (an orphan), an unrelated message, the provider's invoice and a
provider message whose PDF is damaged (quarantined).
"""

import csv
import io
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.evidence_factory import (
    CertificateFields,
    Language,
    Outcome,
    Packaging,
    PdfFile,
    RejectionReason,
    corrupt_pdf,
    evidence_email,
    invoice_email,
    rejection_email,
    unrelated_email,
)

SAMPLES = Path(__file__).resolve().parent
BOGOTA = ZoneInfo("America/Bogota")
DEMO_AS_OF = "2026-11-04T09:00:00-05:00"
MAILBOX = "Evidencias TDP2 <evidencias-tdp2@constructora.example>"
HEADER = (
    "Notificación enviada",
    "Negocio",
    "Inmueble",
    "Cliente",
    "Correo cliente",
    "Correo certificado Lleida",
    "Fecha de envío",
    "Asunto",
)


@dataclass(frozen=True)
class Row:
    kind: str
    negocio: str
    inmueble: str
    client: str
    addresses: str
    copied: str
    sent_at: datetime
    subject: str


def local(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BOGOTA)


def subject_for(negocio: str, document: str = "Estado de cuenta") -> str:
    return f"{document} negocio {negocio} - Torres del Parque"


def certificate(row: Row, recipient: str, number: int, **changes: object) -> CertificateFields:
    sent = row.sent_at.astimezone(UTC) + timedelta(seconds=40)
    fields = CertificateFields(
        certificate_id=f"LLD-20261103-{number:06d}",
        recipient=recipient,
        subject=row.subject,
        message_id=f"{row.sent_at:%Y%m%d%H%M}.{row.negocio}@paco.constructora.example",
        sent_at=sent,
        delivered_at=sent + timedelta(seconds=6),
    )
    return replace(fields, **changes)  # type: ignore[arg-type]


ROWS = [
    Row(
        "Estado de cuenta",
        "1042",
        "Torre A - 1203",
        "Asunción Peñaloza",
        "asuncion.penaloza@correo.example",
        "Sí",
        local(3, 10, 0),
        subject_for("1042"),
    ),
    Row(
        "Estado de cuenta",
        "1043",
        "Torre A - 1301",
        "Mateo y Lucía Quiñones",
        "mateo.quinones@correo.example; lucia.quinones@correo.example",
        "Sí",
        local(3, 10, 5),
        subject_for("1043"),
    ),
    Row(
        "Carta de recaudo + estado de cuenta",
        "1051",
        "Torre B - 402",
        "Hernán Zuluaga",
        "hernan.zuluaga@correo-inexistente.example",
        "Sí",
        local(3, 10, 20),
        subject_for("1051", "Carta de recaudo"),
    ),
    Row(
        "Carta de recaudo + estado de cuenta",
        "1060",
        "Torre B - 505",
        "Beatriz Ocampo",
        "beatriz.ocampo@correo.example",
        "Sí",
        local(3, 11, 0),
        subject_for("1060", "Carta de recaudo"),
    ),
    Row(
        "Estado de cuenta",
        "1064",
        "Torre B - 701",
        "Jordi Puigdomènech",
        "jordi.puig@correo.example",
        "Sí",
        local(3, 11, 30),
        subject_for("1064"),
    ),
    Row(
        "Estado de cuenta",
        "1066",
        "Torre C - 210",
        "Olivia Bennett",
        "olivia.bennett@mail.example",
        "Sí",
        local(3, 11, 45),
        subject_for("1066"),
    ),
    Row(
        "Documento genérico",
        "1070",
        "Torre C - 305",
        "Ramiro Cárdenas",
        "ramiro.cardenas@correo.example",
        "Sí",
        local(3, 12, 10),
        subject_for("1070", "Reglamento de propiedad horizontal"),
    ),
    Row(
        "Estado de cuenta",
        "1072",
        "Torre C - 406",
        "Nubia Arango",
        "nubia.arango@correo.example",
        "Sí",
        local(3, 12, 30),
        subject_for("1072"),
    ),
    Row(
        "Estado de cuenta",
        "1075",
        "Torre C - 802",
        "Fabio Londoño",
        "fabio.londono@correo.example",
        "Sí",
        local(3, 14, 0),
        subject_for("1075"),
    ),
    Row(
        "Estado de cuenta",
        "1080",
        "Torre D - 101",
        "Camila Restrepo",
        "camila.restrepo@correo.example",
        "No",
        local(3, 15, 0),
        subject_for("1080"),
    ),
    Row(
        "Estado de cuenta",
        "1101",
        "Torre D - 1501",
        "Gloria Echeverri",
        "gloria.echeverri@correo.example",
        "Sí",
        local(3, 16, 0),
        "Estado de cuenta - Torres del Parque",
    ),
    Row(
        "Estado de cuenta",
        "1102",
        "Torre D - 1502",
        "Gloria Echeverri",
        "gloria.echeverri@correo.example",
        "Sí",
        local(3, 16, 0),
        "Estado de cuenta - Torres del Parque",
    ),
    Row(
        "Estado de cuenta",
        "1090",
        "Torre D - 903",
        "Iván Mejía",
        "ivan.mejia@correo.example",
        "Sí",
        local(4, 7, 30),
        subject_for("1090"),
    ),
]


def write_send_log() -> None:
    """Write the log as PACO's report exports it: a title, the date range, then the table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Informe notificaciones cartera (E-mail)"])
    writer.writerow(["Proyecto: Torres del Parque Etapa 2"])
    writer.writerow(["Rango de fechas: 01/11/2026 - 04/11/2026"])
    writer.writerow(HEADER)
    for row in ROWS:
        sent = f"{row.sent_at:%d/%m/%Y %H:%M}"
        writer.writerow(
            [
                row.kind,
                row.negocio,
                row.inmueble,
                row.client,
                row.addresses,
                row.copied,
                sent,
                row.subject,
            ]
        )
    (SAMPLES / "envios-paco.csv").write_bytes(buffer.getvalue().encode("utf-8-sig"))


def evidence_messages() -> dict[str, bytes]:
    rows = {row.negocio: row for row in ROWS}
    mateo, lucia = (address.strip() for address in rows["1043"].addresses.split(";"))
    gloria = rows["1101"]
    orphan = Row("Estado de cuenta", "0999", "", "", "", "Sí", local(2, 9, 0), subject_for("0999"))
    return {
        "01-certificado-1042.eml": evidence_email(
            certificate(rows["1042"], "Asunción Peñaloza <asuncion.penaloza@correo.example>", 101)
        ),
        "02-certificados-1043-dos-destinatarios.eml": evidence_email(
            [certificate(rows["1043"], mateo, 102), certificate(rows["1043"], lucia, 103)]
        ),
        "03-entrega-fallida-1051.eml": evidence_email(
            certificate(rows["1051"], rows["1051"].addresses, 104, outcome=Outcome.FAILED)
        ),
        "04-no-certificado-1060.eml": rejection_email(
            certificate(rows["1060"], rows["1060"].addresses, 0), RejectionReason.NO_CREDIT
        ),
        "05-certificat-catala-1064.eml": evidence_email(
            certificate(rows["1064"], rows["1064"].addresses, 105, language=Language.CATALAN)
        ),
        "06-certificate-english-1066.eml": evidence_email(
            certificate(rows["1066"], rows["1066"].addresses, 106, language=Language.ENGLISH)
        ),
        "07-pdf-incrustado-1070.eml": evidence_email(
            certificate(rows["1070"], rows["1070"].addresses, 107), packaging=Packaging.EMBEDDED
        ),
        "08-reenviado-1072.eml": evidence_email(
            certificate(rows["1072"], rows["1072"].addresses, 108),
            packaging=Packaging.OCTET_STREAM,
            forwarded_by="Recepción Constructora <recepcion@constructora.example>",
        ),
        "09-ambiguo-1101-1102-entregado.eml": evidence_email(
            certificate(gloria, gloria.addresses, 109)
        ),
        "10-ambiguo-1101-1102-fallido.eml": evidence_email(
            certificate(
                gloria,
                gloria.addresses,
                110,
                outcome=Outcome.FAILED,
                sent_at=gloria.sent_at.astimezone(UTC) + timedelta(seconds=55),
            )
        ),
        "11-huerfano-sin-envio.eml": evidence_email(
            certificate(orphan, "desconocido@correo.example", 111)
        ),
        "12-no-relacionado.eml": unrelated_email(mailbox=MAILBOX),
        "13-factura-lleida.eml": invoice_email(mailbox=MAILBOX),
        "14-pdf-danado.eml": evidence_email(
            [],
            extra_pdfs=[PdfFile("Certificado_danado.pdf", corrupt_pdf())],
            subject="Correo certificado: Estado de cuenta negocio 1077",
        ),
    }


def write_mailbox() -> None:
    folder = SAMPLES / "evidencias"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.eml"):
        stale.unlink()
    for name, raw in evidence_messages().items():
        (folder / name).write_bytes(raw)


if __name__ == "__main__":
    write_send_log()
    write_mailbox()
    print(f"samples written to {SAMPLES}; judge them as of {DEMO_AS_OF}")
