"""``acuse quarantine``, ``acuse reprocess`` and ``acuse archive verify`` through the real CLI."""

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from config.database import open_database
from monitor.archive import Archive
from monitor.models import Evidence
from tests.acuse_process import run_acuse
from tests.evidence_factory import (
    DEFAULT_SUBJECT,
    PdfFile,
    corrupt_pdf,
    evidence_email,
    rejection_email,
)
from tests.send_log_samples import HEADERS, row, write_csv
from tests.trust_pki import DKIM_RECORD_NAME, SIGNER_PATTERN, invented_pki


def write_config(root: Path, extra: str = "", url: str = "sqlite:///acuse.db") -> Path:
    config = root / "acuse.toml"
    config.write_text(
        f"""
[database]
url = "{url}"

[archive]
path = "archive"

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"
{extra}
""",
        encoding="utf-8",
    )
    return config


def ingest(root: Path, config: Path, *messages: bytes) -> None:
    folder = root / "mail"
    folder.mkdir(exist_ok=True)
    for number, raw in enumerate(messages):
        (folder / f"{number:03d}.eml").write_bytes(raw)
    result = run_acuse(config, "ingest", str(folder), "--project", "TDP2")
    assert result.returncode == 0, result.stderr


def quarantine_rows(config: Path) -> list[dict[str, object]]:
    result = run_acuse(config, "quarantine", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


@pytest.mark.both_engines
def test_quarantine_lists_reason(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    damaged = evidence_email([], extra_pdfs=[PdfFile("Mail_LLD-1.pdf", corrupt_pdf())])
    ingest(tmp_path, config, damaged, evidence_email())

    rows = quarantine_rows(config)

    assert len(rows) == 1
    assert rows[0]["code"] == "unreadable_pdf"
    assert rows[0]["from_address"] == "noreply@certificado.lleida.net"
    assert {"message_id", "project", "detail", "sha256", "stored_at"} <= set(rows[0])


def test_quarantine_table_in_english(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email([], extra_pdfs=[PdfFile("x.pdf", corrupt_pdf())]))

    result = run_acuse(config, "--lang", "en", "quarantine", "--project", "TDP2")

    assert result.returncode == 0, result.stderr
    assert "unreadable PDF" in result.stdout
    assert "unreadable_pdf" not in result.stdout


@pytest.mark.both_engines
def test_reprocess_after_raising_limit(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, "[limits]\nmax_pdf_pages = 1\n", url=db_url)
    ingest(tmp_path, config, evidence_email())
    assert quarantine_rows(config)[0]["code"] == "limit_exceeded"
    write_config(tmp_path, "[limits]\nmax_pdf_pages = 10\n", url=db_url)

    result = run_acuse(config, "--lang", "en", "reprocess", "--all-quarantined")

    assert result.returncode == 0, result.stderr
    assert "quarantined -> evidence; evidence: 1 added" in result.stdout
    assert quarantine_rows(config) == []


@pytest.mark.both_engines
def test_reprocess_twice_changes_nothing(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email(), rejection_email())

    first = run_acuse(config, "--lang", "en", "reprocess", "1", "2")
    second = run_acuse(config, "--lang", "en", "reprocess", "1", "2")

    assert first.returncode == 0, first.stderr
    assert second.stdout.count("0 added, 1 updated, 0 removed") == 2
    database = open_database(db_url)
    with database.session() as session:
        stored = session.exec(select(func.count()).select_from(Evidence)).one()
    database.dispose()
    assert stored == 2


def certified_then_trusted(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """Certify a send with unsigned evidence, then configure trust roots; return the sends."""
    config = write_config(tmp_path)
    send_log = write_csv(
        tmp_path / "envios.csv",
        [HEADERS, row("asuncion.penaloza@correo.example", "02/03/2026 09:05", DEFAULT_SUBJECT)],
    )
    ingest(tmp_path, config, evidence_email())
    run_acuse(config, "import-sends", str(send_log), "--project", "TDP2")
    run_acuse(config, "reconcile", "--as-of", "2026-03-03T12:00-05:00")
    before = sends(config)
    root = invented_pki().ca.write_pem(tmp_path / "ca.pem")
    write_config(
        tmp_path,
        f"""
[providers.lleida]
trust_roots = ["{root}"]
signer_pattern = '{SIGNER_PATTERN}'
dkim_dns = false
[providers.lleida.dkim_keys]
"{DKIM_RECORD_NAME}" = "{invented_pki().dkim.record}"
""",
    )
    return config, before


def test_reprocess_with_trust_roots_unverifies(tmp_path: Path) -> None:
    config, before = certified_then_trusted(tmp_path)

    result = run_acuse(config, "reprocess", "1")

    assert result.returncode == 0, result.stderr
    after = sends(config)
    assert before[0]["state"] == "certified"
    assert after[0]["state"] == "unverified"
    assert after[0]["evidence_id"] == before[0]["evidence_id"]
    assert "DKIM: the message has no DKIM signature" in str(after[0]["reason"])


def test_show_names_failed_checks(tmp_path: Path) -> None:
    config, before = certified_then_trusted(tmp_path)
    run_acuse(config, "reprocess", "1")

    result = run_acuse(config, "show", str(before[0]["send_id"]), "--format", "json")

    assert result.returncode == 0, result.stderr
    evidence = json.loads(result.stdout)[0]["evidence"]
    assert evidence["trust_verdict"] == "unverified"
    assert evidence["dkim_result"] == "none"
    assert evidence["signature_result"] == "none"
    assert "PDF signature: the PDF carries no signature" in evidence["trust_reasons"]


def sends(config: Path) -> list[dict[str, object]]:
    result = run_acuse(config, "sends", "--format", "json", "--as-of", "2026-03-03T12:00-05:00")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_reprocess_unknown_id_is_usage_error(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email())

    result = run_acuse(config, "--lang", "en", "reprocess", "99")

    assert result.returncode == 2
    assert "No stored message with id 99" in result.stderr


def test_reprocess_needs_ids_or_all(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)

    result = run_acuse(config, "--lang", "en", "reprocess")

    assert result.returncode == 2


def test_archive_verify_clean(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email(), rejection_email())

    result = run_acuse(config, "--lang", "en", "archive", "verify")

    assert result.returncode == 0, result.stderr
    assert "2 archived messages checked: 0 missing or altered." in result.stdout


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_archive_verify_reports_damage(tmp_path: Path, db_url: str, damage: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email())
    archive = Archive(tmp_path / "archive")
    path = archive.path_for(next(archive.stored_hashes()))
    os.chmod(path, 0o640)
    if damage == "altered":
        path.write_bytes(path.read_bytes() + b"\r\nX-Alterado: si\r\n")
    else:
        path.unlink()

    result = run_acuse(config, "archive", "verify", "--format", "json")

    assert result.returncode == 1
    problems = json.loads(result.stdout)
    assert [problem["problem"] for problem in problems] == [damage]


def test_archive_verify_lists_untracked_files(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path, url=db_url)
    ingest(tmp_path, config, evidence_email())
    stray = Archive(tmp_path / "archive").store(rejection_email())

    result = run_acuse(config, "--lang", "en", "archive", "verify")

    assert result.returncode == 0, result.stderr
    assert "1 archived file belongs to no ledger row" in result.stdout
    assert stray.sha256 in result.stdout
