"""How trust verdicts become send states, and how a send cross-checks its evidence."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from config.database import Database
from config.settings import ProjectView, project_view, settings_from_mapping
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from monitor.models import CheckResult, Evidence, EvidenceKind, TrustVerdict
from monitor.reading import InProcessReader
from reconcile.models import MatchRule, Send, SendState
from reconcile.reconciliation import reconcile_project, subject_normalizer
from tests.evidence_factory import signed_evidence_email
from tests.test_reconciliation import SENT, add_evidence, add_send, project
from tests.trust_pki import DKIM_RECORD_NAME, SIGNER_PATTERN, invented_pki

pytestmark = pytest.mark.both_engines

__all__ = ["project"]


def reconcile(database: Database, project: ProjectView) -> None:
    reconcile_project(
        database, project, subject_normalizer(project), as_of=SENT + timedelta(days=1)
    )


def send_row(database: Database, send_id: int) -> Send:
    with database.session() as session:
        send = session.get(Send, send_id)
        assert send is not None
        return send


def test_unverified_evidence_makes_send_unverified(
    database: Database, project: ProjectView
) -> None:
    send_id = add_send(database)
    add_evidence(database, trust_verdict=TrustVerdict.UNVERIFIED)

    reconcile(database, project)

    assert send_row(database, send_id).state is SendState.UNVERIFIED


def test_unverified_rejection_makes_send_unverified(
    database: Database, project: ProjectView
) -> None:
    send_id = add_send(database)
    add_evidence(database, EvidenceKind.REJECTED, trust_verdict=TrustVerdict.UNVERIFIED)

    reconcile(database, project)

    assert send_row(database, send_id).state is SendState.UNVERIFIED


def test_warned_evidence_certifies(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)
    add_evidence(database, trust_verdict=TrustVerdict.WARNING)

    reconcile(database, project)

    assert send_row(database, send_id).state is SendState.CERTIFIED


def test_genuine_evidence_replaces_unverified_link(
    database: Database, project: ProjectView
) -> None:
    send_id = add_send(database)
    forged = add_evidence(database, trust_verdict=TrustVerdict.UNVERIFIED)
    reconcile(database, project)
    genuine = add_evidence(database, trust_verdict=TrustVerdict.VERIFIED)

    reconcile(database, project)

    send = send_row(database, send_id)
    assert send.evidence_id == genuine
    assert send.evidence_id != forged
    assert send.state is SendState.CERTIFIED


def test_genuine_evidence_wins_in_same_pass(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)
    add_evidence(
        database, trust_verdict=TrustVerdict.UNVERIFIED, sent_at=SENT + timedelta(seconds=5)
    )
    genuine = add_evidence(
        database, trust_verdict=TrustVerdict.VERIFIED, sent_at=SENT + timedelta(minutes=3)
    )

    reconcile(database, project)

    send = send_row(database, send_id)
    assert send.evidence_id == genuine
    assert send.state is SendState.CERTIFIED


def test_certificate_of_other_send_not_linked(database: Database, project: ProjectView) -> None:
    send_id = add_send(database, subject="Estado de cuenta", message_id="m1@paco.example")
    add_evidence(database, subject="Carta de cobro", original_message_id="m1@paco.example")

    reconcile(database, project)

    send = send_row(database, send_id)
    assert send.evidence_id is None
    assert send.state is SendState.MISSING


def test_message_id_outside_window_not_linked(database: Database, project: ProjectView) -> None:
    send_id = add_send(database, message_id="m1@paco.example")
    add_evidence(database, original_message_id="m1@paco.example", sent_at=SENT + timedelta(days=3))

    reconcile(database, project)

    assert send_row(database, send_id).evidence_id is None


def test_message_id_with_agreeing_subject_linked(database: Database, project: ProjectView) -> None:
    send_id = add_send(database, message_id="m1@paco.example")
    add_evidence(database, original_message_id="m1@paco.example")

    reconcile(database, project)

    assert send_row(database, send_id).match_rule is MatchRule.MESSAGE_ID


def test_ingest_stores_checks(tmp_path: Path, database: Database) -> None:
    root = invented_pki().ca.write_pem(tmp_path / "ca.pem")
    lleida = {
        "trust_roots": [str(root)],
        "signer_pattern": SIGNER_PATTERN,
        "dkim_keys": {DKIM_RECORD_NAME: invented_pki().dkim.record},
        "dkim_dns": False,
    }
    settings = settings_from_mapping(
        {"providers": {"lleida": lleida}, "projects": [{"code": "TDP2", "name": "Torres"}]},
        tmp_path,
    )
    ingestor = Ingestor(
        database, Archive(tmp_path / "archive"), project_view(settings, "TDP2"), InProcessReader()
    )

    ingestor.ingest_all([IncomingMessage(signed_evidence_email(), "file", "evidence.eml")])

    with database.session() as session:
        evidence = session.exec(select(Evidence)).one()
    assert evidence.trust_verdict is TrustVerdict.VERIFIED
    assert evidence.dkim_result is CheckResult.PASS
    assert evidence.dkim_domain == "lleida.net"
    assert evidence.signature_result is CheckResult.PASS
    assert evidence.signature_signer is not None
    assert evidence.signature_time is not None
    assert evidence.cross_check_result is CheckResult.PASS
    assert evidence.trust_reasons is None
