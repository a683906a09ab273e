"""Send states depend on the stored sends and evidence, never on the order they arrived in."""

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel, select

from config.database import Database, open_database
from config.settings import ProjectView, Settings, project_view, settings_from_mapping
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from monitor.models import Evidence, EvidenceKind, TrustVerdict
from reconcile.alert_models import Alert, Resolution
from reconcile.alert_policy import evaluate_alerts
from reconcile.models import MatchCandidate, Send, SendState
from reconcile.queries import list_orphans
from reconcile.reconciliation import reconcile_project, subject_normalizer
from reconcile.send_import import import_send_log
from tests.alert_scenario import SendSpec, certificate_for, local, scenario_settings
from tests.evidence_factory import Outcome, RejectionReason, evidence_email, rejection_email
from tests.test_reconciliation import SENT, add_evidence, add_send, load_send, project

__all__ = ["project"]

SAMPLE_LOG = Path(__file__).resolve().parent.parent / "samples" / "envios-paco.csv"
# Send 1075 of the samples: no evidence for it is in the sample mailbox.
SEND_1075 = SendSpec(
    negocio="1075",
    client="Fabio Londoño",
    recipient="fabio.londono@correo.example",
    sent_at=local(2026, 11, 3, 14, 0),
)
JUDGED_AT = SEND_1075.sent_at + timedelta(days=2)
KINDS = {
    "delivered": EvidenceKind.DELIVERED,
    "failed": EvidenceKind.DELIVERY_FAILED,
    "rejected": EvidenceKind.REJECTED,
}


def evidence_1075(name: str) -> bytes:
    """One of the three pieces of evidence the provider could send about send 1075."""
    if name == "rejected":
        return rejection_email(certificate_for(SEND_1075), RejectionReason.NO_CREDIT)
    outcome = Outcome.FAILED if name == "failed" else Outcome.DELIVERED
    return evidence_email(
        certificate_for(SEND_1075, outcome=outcome, certificate_id=f"LLD-1075-{name}")
    )


@pytest.fixture
def samples_project(make_settings: Callable[..., Settings], database: Database) -> ProjectView:
    """The sample send log imported into a project judged like the demo."""
    settings = scenario_settings(make_settings, None)
    project = project_view(settings, "TDP2")
    import_send_log(database, SAMPLE_LOG, project, SEND_1075.sent_at)
    return project


def ingest(database: Database, project: ProjectView, tmp_path: Path, names: Sequence[str]) -> None:
    ingestor = Ingestor(database, Archive(tmp_path / "archive"), project)
    ingestor.ingest_all(
        [IncomingMessage(evidence_1075(name), "file", f"{name}.eml") for name in names]
    )


def reconcile_1075(database: Database, project: ProjectView) -> Send:
    reconcile_project(database, project, subject_normalizer(project), as_of=JUDGED_AT)
    with database.session() as session:
        return session.exec(select(Send).where(Send.negocio == "1075")).one()


def candidate_kinds(database: Database, send: Send) -> list[str]:
    with database.session() as session:
        kinds = session.exec(
            select(Evidence.kind)
            .join(MatchCandidate, MatchCandidate.evidence_id == Evidence.id)  # type: ignore[arg-type]
            .where(MatchCandidate.send_id == send.id)
        ).all()
    return sorted(kinds)


SEQUENCES = [
    ("delivered", "rejected"),
    ("rejected", "delivered"),
    ("failed", "delivered"),
    ("delivered", "rejected", "failed"),
]


@pytest.mark.both_engines
@pytest.mark.parametrize("names", SEQUENCES, ids="-then-".join)
def test_evidence_one_poll_at_a_time_is_ambiguous(
    database: Database, samples_project: ProjectView, tmp_path: Path, names: tuple[str, ...]
) -> None:
    for name in names:
        ingest(database, samples_project, tmp_path, [name])
        reconcile_1075(database, samples_project)

    send = reconcile_1075(database, samples_project)

    assert send.state is SendState.AMBIGUOUS
    assert candidate_kinds(database, send) == sorted(KINDS[name] for name in names)


@pytest.mark.both_engines
@pytest.mark.parametrize("names", SEQUENCES, ids="-and-".join)
def test_evidence_in_one_poll_is_ambiguous(
    database: Database, samples_project: ProjectView, tmp_path: Path, names: tuple[str, ...]
) -> None:
    ingest(database, samples_project, tmp_path, names)

    send = reconcile_1075(database, samples_project)

    assert send.state is SendState.AMBIGUOUS
    assert candidate_kinds(database, send) == sorted(KINDS[name] for name in names)


@pytest.mark.both_engines
def test_late_rejection_is_no_orphan(
    database: Database, samples_project: ProjectView, tmp_path: Path
) -> None:
    ingest(database, samples_project, tmp_path, ["delivered"])
    reconcile_1075(database, samples_project)
    ingest(database, samples_project, tmp_path, ["rejected"])

    reconcile_1075(database, samples_project)

    with database.session() as session:
        orphans = list(list_orphans(session, samples_project, JUDGED_AT))
    assert [orphan.kind for orphan in orphans if orphan.subject == SEND_1075.full_subject] == []


@pytest.mark.both_engines
def test_rejection_alert_closes_for_review(
    make_settings: Callable[..., Settings], database: Database, tmp_path: Path
) -> None:
    settings = scenario_settings(make_settings, None)
    project = project_view(settings, "TDP2")
    import_send_log(database, SAMPLE_LOG, project, SEND_1075.sent_at)
    ingest(database, project, tmp_path, ["rejected"])
    send = reconcile_1075(database, project)
    evaluate_alerts(database, settings, SEND_1075.sent_at + timedelta(hours=1))
    ingest(database, project, tmp_path, ["delivered"])
    reconcile_1075(database, project)

    evaluate_alerts(database, settings, SEND_1075.sent_at + timedelta(hours=2))

    with database.session() as session:
        alert = session.exec(select(Alert).where(Alert.send_id == send.id)).one()
    assert alert.kind == "certification_rejected"
    assert alert.resolved_at is not None
    assert alert.resolution is Resolution.NEEDS_REVIEW


@pytest.mark.both_engines
@pytest.mark.parametrize("bounce_first", [True, False])
def test_resend_after_bounce_is_its_own_send(
    database: Database, project: ProjectView, bounce_first: bool
) -> None:
    bounced = add_send(database)
    resent = add_send(database, sent_at=SENT + timedelta(hours=1))
    arrivals = [
        lambda: add_evidence(database, EvidenceKind.DELIVERY_FAILED),
        lambda: add_evidence(database, sent_at=SENT + timedelta(hours=1, minutes=1)),
    ]
    for arrive in arrivals if bounce_first else reversed(arrivals):
        arrive()
        reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(days=1))

    assert load_send(database, bounced).state is SendState.DELIVERY_FAILED
    assert load_send(database, resent).state is SendState.CERTIFIED


@pytest.mark.both_engines
@pytest.mark.parametrize("notice_first", [True, False])
def test_notice_and_delivery_are_ambiguous(
    database: Database, project: ProjectView, notice_first: bool
) -> None:
    ana = add_send(database, recipient="ana@example.com")
    luis = add_send(database, recipient="luis@example.com")
    arrivals = [
        lambda: add_evidence(database, EvidenceKind.REJECTED, recipient=None, certificate_id=None),
        lambda: add_evidence(database, recipient="ana@example.com"),
    ]
    for arrive in arrivals if notice_first else reversed(arrivals):
        arrive()
        reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(days=1))

    assert load_send(database, ana).state is SendState.AMBIGUOUS
    assert load_send(database, luis).state is SendState.REJECTED


# The property: any arrival order, with a pass after each arrival, ends as one pass at the end.

RECIPIENTS = ("ana@example.com", "luis@example.com")
SUBJECTS = ("Estado de cuenta", "Carta de recaudo")
ITEM_TIMES = (timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=61))


@dataclass(frozen=True)
class SendRow:
    label: str
    recipient: str
    subject: str
    offset: timedelta
    message_id: str | None


@dataclass(frozen=True)
class EvidenceRow:
    label: str
    recipient: str | None
    subject: str
    offset: timedelta
    kind: EvidenceKind
    verdict: TrustVerdict
    message_id: str | None


SENDS = (
    SendRow("s1", RECIPIENTS[0], SUBJECTS[0], timedelta(0), "m1@paco"),
    SendRow("s2", RECIPIENTS[0], SUBJECTS[0], timedelta(0), None),
    SendRow("s3", RECIPIENTS[0], SUBJECTS[0], timedelta(hours=1), None),
    SendRow("s4", RECIPIENTS[1], SUBJECTS[0], timedelta(0), None),
    SendRow("s5", RECIPIENTS[1], SUBJECTS[1], timedelta(minutes=1), None),
)


@st.composite
def evidence_rows(draw: st.DrawFn) -> EvidenceRow:
    recipient = draw(st.sampled_from((*RECIPIENTS, None)))
    # A notice without recipient is the provider's refusal to certify a whole email.
    kinds = [EvidenceKind.REJECTED] if recipient is None else list(EvidenceKind)
    return EvidenceRow(
        label="",
        recipient=recipient,
        subject=draw(st.sampled_from(SUBJECTS)),
        offset=draw(st.sampled_from(ITEM_TIMES)),
        kind=draw(st.sampled_from(kinds)),
        verdict=draw(st.sampled_from((TrustVerdict.VERIFIED, TrustVerdict.UNVERIFIED))),
        message_id=draw(st.sampled_from((None, "m1@paco"))),
    )


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[SendRow | EvidenceRow], list[SendRow | EvidenceRow]]:
    """Every send and some evidence: in a canonical order, and in the order they arrive.

    Evidence arrives in any order, between sends. Sends keep the order of the send log: a group
    of identical sends takes its evidence in that order, which is the log's and not chance.
    """
    drawn = draw(st.lists(evidence_rows(), min_size=1, max_size=6))
    evidence = [replace(row, label=f"e{index}") for index, row in enumerate(drawn)]
    canonical: list[SendRow | EvidenceRow] = [*SENDS, *evidence]
    shuffled = draw(st.permutations(canonical))
    sends_in_order = iter(SENDS)
    arrived = [next(sends_in_order) if isinstance(row, SendRow) else row for row in shuffled]
    return canonical, arrived


# Each example commits dozens of transactions, and in a memory-backed folder their fsyncs are free.
_SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - a private subfolder


@pytest.fixture(scope="module")
def example_databases() -> Iterator[tuple[Database, Database]]:
    """Two databases kept for every example, so each engine's statement cache stays warm."""
    with tempfile.TemporaryDirectory(prefix="acuse-arrival-", dir=_SCRATCH) as folder:
        databases = [open_database(f"sqlite:///{folder}/{name}.db") for name in ("a", "b")]
        yield databases[0], databases[1]
        for database in databases:
            database.dispose()


@contextmanager
def emptied(databases: tuple[Database, Database]) -> Iterator[tuple[Database, Database]]:
    """The databases without any row, and without them again afterwards."""
    try:
        yield databases
    finally:
        for database in databases:
            with database.write() as session:
                for table in reversed(SQLModel.metadata.sorted_tables):
                    session.execute(table.delete())


def store(database: Database, row: SendRow | EvidenceRow) -> None:
    if isinstance(row, SendRow):
        add_send(
            database,
            recipient=row.recipient,
            subject=row.subject,
            sent_at=SENT + row.offset,
            message_id=row.message_id,
            external_id=row.label,
        )
        return
    add_evidence(
        database,
        row.kind,
        recipient=row.recipient,
        subject=row.subject,
        sent_at=SENT + row.offset,
        trust_verdict=row.verdict,
        original_message_id=row.message_id,
        certificate_id=row.label,
    )


def outcome(
    database: Database, evidence: Sequence[EvidenceRow]
) -> dict[str, tuple[SendState, tuple[str, ...]]]:
    """Each send's state and the evidence it is ambiguous between, described by content.

    Identical pieces of evidence are indistinguishable, so which of them a tie gives to a send
    may follow arrival. Comparing their contents instead of their labels ignores that choice.
    """
    content = {row.label: repr(replace(row, label="")) for row in evidence}
    with database.session() as session:
        sends = session.exec(select(Send)).all()
        candidates = session.exec(
            select(MatchCandidate.send_id, Evidence.certificate_id).join(
                Evidence,
                Evidence.id == MatchCandidate.evidence_id,  # type: ignore[arg-type]
            )
        ).all()
    by_send: dict[int, list[str]] = {}
    for send_id, label in candidates:
        by_send.setdefault(send_id, []).append(content[str(label)])
    return {
        str(send.external_id): (send.state, tuple(sorted(by_send.get(send.id or 0, []))))
        for send in sends
    }


@cache
def _property_project() -> ProjectView:
    # Nothing is read or written in the folder: the databases come from example_databases.
    folder = Path(tempfile.gettempdir())
    mapping = {"projects": [{"code": "TDP2", "name": "Torres del Parque", "missing_after": "6h"}]}
    return project_view(settings_from_mapping(mapping, folder), "TDP2")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=arrivals())
def test_arrival_order_does_not_change_states(
    example_databases: tuple[Database, Database],
    orders: tuple[list[SendRow | EvidenceRow], list[SendRow | EvidenceRow]],
) -> None:
    canonical, arrived = orders
    project = _property_project()
    as_of = SENT.astimezone(UTC) + timedelta(days=1)

    with emptied(example_databases) as (at_once, one_by_one):
        for row in canonical:
            store(at_once, row)
        reconcile_project(at_once, project, str.casefold, as_of=as_of)
        for row in arrived:
            store(one_by_one, row)
            reconcile_project(one_by_one, project, str.casefold, as_of=as_of)

        evidence = [row for row in canonical if isinstance(row, EvidenceRow)]
        assert outcome(one_by_one, evidence) == outcome(at_once, evidence)
