"""Reconciliation passes with nothing new to match: deadlines still move, changes still count."""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event, update
from sqlmodel import col

from config.database import Database
from config.settings import ProjectView, Settings, project_view
from monitor.models import Evidence, StoredMessage
from reconcile.models import SendState
from reconcile.reconciliation import count_states, reconcile_project
from tests.test_reconciliation import SENT, add_evidence, add_send, load_send, project

__all__ = ["project"]


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements the database runs while the test is in progress."""
    seen: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", remember)
    yield seen
    event.remove(database.engine, "before_cursor_execute", remember)


def test_unchanged_pass_skips_matching(
    database: Database, project: ProjectView, statements: list[str]
) -> None:
    add_send(database)
    add_send(database, recipient="luis@example.com")
    add_evidence(database)
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))
    statements.clear()

    again = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=2))

    assert again.matched == 0
    assert not [sql for sql in statements if "match_candidate" in sql]
    with database.session() as session:
        states = count_states(session, project.code)
    assert states == {SendState.CERTIFIED: 1, SendState.PENDING: 1}


def test_unchanged_pass_moves_deadline_both_ways(database: Database, project: ProjectView) -> None:
    send_id = add_send(database)
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=7))
    missing = load_send(database, send_id).state

    earlier = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))

    assert missing == SendState.MISSING
    assert load_send(database, send_id).state == SendState.PENDING
    assert earlier.state_changes == 1


def test_reprocessed_evidence_is_matched(database: Database, project: ProjectView) -> None:
    send_id = add_send(database, subject="Estado de cuenta")
    evidence_id = add_evidence(database, subject="Otro asunto")
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))
    unlinked = load_send(database, send_id).evidence_id

    # What reprocessing does: new fields for the evidence, and a new reading time.
    with database.write() as session:
        changed = update(Evidence).where(col(Evidence.id) == evidence_id)
        session.execute(changed.values(subject="Estado de cuenta"))
        session.execute(update(StoredMessage).values(read_at=SENT + timedelta(hours=2)))
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=3))

    assert unlinked is None
    assert load_send(database, send_id).evidence_id == evidence_id


def test_wider_window_is_matched(
    database: Database, make_settings: Callable[..., Settings]
) -> None:
    narrow = make_settings(
        projects=[{"code": "TDP2", "name": "Torres", "match_window_after": "1h"}]
    )
    wide = make_settings(projects=[{"code": "TDP2", "name": "Torres", "match_window_after": "4h"}])
    send_id = add_send(database)
    add_evidence(database, sent_at=SENT + timedelta(hours=2))
    as_of = SENT + timedelta(hours=3)
    reconcile_project(database, project_view(narrow, "TDP2"), str.casefold, as_of=as_of)
    before = load_send(database, send_id).evidence_id

    reconcile_project(database, project_view(wide, "TDP2"), str.casefold, as_of=as_of)

    assert before is None
    assert load_send(database, send_id).state == SendState.CERTIFIED


def test_added_evidence_matched_for_recipient(database: Database, project: ProjectView) -> None:
    ana = add_send(database)
    luis = add_send(database, recipient="luis@example.com")
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))
    evidence_id = add_evidence(database)

    later = reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=7))

    assert later.matched == 1
    assert load_send(database, ana).evidence_id == evidence_id
    assert load_send(database, ana).state == SendState.CERTIFIED
    assert load_send(database, luis).state == SendState.MISSING


def test_added_pass_limits_matching(
    database: Database, project: ProjectView, statements: list[str]
) -> None:
    add_send(database)
    add_send(database, recipient="luis@example.com")
    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=1))
    add_evidence(database)
    statements.clear()

    reconcile_project(database, project, str.casefold, as_of=SENT + timedelta(hours=2))

    send_queries = [sql for sql in statements if sql.lstrip().startswith("SELECT send.id")]
    assert send_queries
    assert [sql for sql in send_queries if "UNION" not in sql] == []
