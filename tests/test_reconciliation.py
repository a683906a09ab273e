"""Reconciliation passes over a real SQLite database: links, states and deadlines."""

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlmodel import select

from config.database import Database
from config.settings import ProjectView, Settings, project_view
from monitor.models import Evidence, EvidenceKind, MessageClass, StoredMessage
from reconcile.models import MatchCandidate, MatchRule, Send, SendState
from reconcile.reconciliation import reconcile_project

pytestmark = pytest.mark.both_engines

SENT = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
_numbers = count(1)


@pytest.fixture
def project(make_settings: Callable[..., Settings]) -> ProjectView:
    settings = make_settings(
        projects=[{"code": "TDP2", "name": "Torres del Parque", "missing_after": "6h"}]
    )
    return project_view(settings, "TDP2")


def add_send(database: Database, recipient: str = "ana@example.com", **values: object) -> int:
    number = next(_numbers)
    send = Send(
        project="TDP2",
        send_key=f"key-{number}",
        recipient=recipient,
        subject=str(values.pop("subject", "Estado de cuenta")),
        sent_at=values.pop("sent_at", SENT),  # type: ignore[arg-type]
        imported_at=SENT,
        **values,  # type: ignore[arg-type]
    )
    with database.write() as session:
        session.add(send)
        session.flush()
        assert send.id is not None
        return send.id


def add_evidence(
    database: Database,
    kind: EvidenceKind = EvidenceKind.DELIVERED,
    recipient: str | None = "ana@example.com",
    **values: object,
) -> int:
    number = next(_numbers)
    with database.write() as session:
        message = StoredMessage(
            project="TDP2",
            origin="file",
            location=f"evidence-{number}.eml",
            sha256=hashlib.sha256(str(number).encode()).hexdigest(),
            size=100,
            stored_at=SENT,
            classification=MessageClass.EVIDENCE,
            read_at=SENT,
        )
        session.add(message)
        session.flush()
        assert message.id is not None
        evidence = Evidence(
            message_pk=message.id,
            project="TDP2",
            provider="lleida",
            kind=kind,
            source="pdf",
            certificate_id=values.pop("certificate_id", f"CERT-{number}"),
            recipient=recipient,
            subject=str(values.pop("subject", "Estado de cuenta")),
            sent_at=values.pop("sent_at", SENT + timedelta(minutes=1)),  # type: ignore[arg-type]
            received_at=SENT + timedelta(minutes=5),
            **values,  # type: ignore[arg-type]
        )
        session.add(evidence)
        session.flush()
        assert evidence.id is not None
        return evidence.id


def load_send(database: Database, send_id: int) -> Send:
    with database.session() as session:
        send = session.get(Send, send_id)
        assert send is not None
        return send


def test_certified_send_is_linked(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)
    evidence_id = add_evidence(database)

    summary = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    send = load_send(database, send_id)
    assert send.evidence_id == evidence_id
    assert send.match_rule == MatchRule.RECIPIENT_SUBJECT_TIME
    assert send.state == SendState.CERTIFIED
    assert summary.matched == 1


def test_deadline_turns_pending_into_missing(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=5))
    before_deadline = load_send(database, send_id).state
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=6))
    after_deadline = load_send(database, send_id).state

    assert before_deadline == SendState.PENDING
    assert after_deadline == SendState.MISSING


def test_not_copied_is_immediate(database: Database, project: ProjectView) -> None:
    send_id = add_send(database, lleida_copied=False)

    reconcile_project(database, project, str.casefold, as_of=SENT)

    assert load_send(database, send_id).state == SendState.NOT_COPIED


def test_failure_and_rejection_states(database: Database, project: ProjectView) -> None:
    failed_id = add_send(database, recipient="ana@example.com")
    rejected_id = add_send(database, recipient="luis@example.com")
    add_evidence(database, EvidenceKind.DELIVERY_FAILED, recipient="ana@example.com")
    add_evidence(database, EvidenceKind.REJECTED, recipient="luis@example.com")

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    assert load_send(database, failed_id).state == SendState.DELIVERY_FAILED
    assert load_send(database, rejected_id).state == SendState.REJECTED


def test_full_pass_counts_each_state_change_once(database: Database, project: ProjectView) -> None:
    certified_id = add_send(database)
    missing_id = add_send(database, recipient="luis@example.com")
    pending_id = add_send(database, recipient="eva@example.com", sent_at=SENT + timedelta(hours=9))
    add_evidence(database)

    summary = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=10))

    assert summary.matched == 1
    assert summary.state_changes == 2
    assert load_send(database, certified_id).state == SendState.CERTIFIED
    assert load_send(database, missing_id).state == SendState.MISSING
    assert load_send(database, pending_id).state == SendState.PENDING


def test_second_pass_changes_nothing(database: Database, project: ProjectView) -> None:
    add_send(database)
    add_evidence(database)
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    again = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    assert again.matched == 0
    assert again.state_changes == 0


def test_late_evidence_certifies_missing_send(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=7))
    add_evidence(database, sent_at=SENT + timedelta(minutes=2))

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=8))

    assert load_send(database, send_id).state == SendState.CERTIFIED


def test_ambiguity_is_stored_then_resolved(database: Database, project: ProjectView) -> None:
    first = add_send(database, negocio="101")
    second = add_send(database, negocio="102")
    delivered = add_evidence(database)
    failed = add_evidence(
        database, EvidenceKind.DELIVERY_FAILED, sent_at=SENT + timedelta(minutes=2)
    )

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    assert load_send(database, first).state == SendState.AMBIGUOUS
    assert load_send(database, second).candidates == f"{delivered},{failed}"
    with database.session() as session:
        candidates = session.exec(
            select(MatchCandidate).where(MatchCandidate.send_id == first)
        ).all()
    assert {candidate.evidence_id for candidate in candidates} == {delivered, failed}


def test_recipientless_rejection_covers_all_recipients(
    database: Database, project: ProjectView
) -> None:
    ana = add_send(database, recipient="ana@example.com")
    luis = add_send(database, recipient="luis@example.com")
    notice = add_evidence(database, EvidenceKind.REJECTED, recipient=None, certificate_id=None)

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    assert load_send(database, ana).evidence_id == notice
    assert load_send(database, luis).evidence_id == notice
    assert load_send(database, luis).state == SendState.REJECTED
