"""Batch updates and datetime reading in config.database, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from config.database import Database, update_rows
from reconcile.models import MatchRule, Send
from tests.test_reconciliation import SENT, add_evidence, add_send

SEND_TABLE = Send.__table__  # type: ignore[attr-defined]


def stored_links(database: Database) -> dict[int, tuple[int | None, MatchRule | None]]:
    with database.session() as session:
        sends = session.exec(select(Send)).all()
    return {send.id or 0: (send.evidence_id, send.match_rule) for send in sends}


def test_update_rows_sets_columns_by_id(database: Database) -> None:
    first, second, untouched = (add_send(database) for _ in range(3))
    evidence = [add_evidence(database) for _ in range(2)]

    with database.write() as session:
        update_rows(
            session.connection(),
            SEND_TABLE,
            ("evidence_id", "match_rule"),
            [
                (first, evidence[0], MatchRule.MESSAGE_ID.value),
                (second, evidence[1], MatchRule.SUBJECT_TIME.value),
            ],
        )

    links = stored_links(database)
    assert links[first] == (evidence[0], MatchRule.MESSAGE_ID)
    assert links[second] == (evidence[1], MatchRule.SUBJECT_TIME)
    assert links[untouched] == (None, None)


def test_update_rows_without_rows_changes_nothing(database: Database) -> None:
    send_id = add_send(database)

    with database.write() as session:
        update_rows(session.connection(), SEND_TABLE, ("evidence_id", "match_rule"), [])

    assert stored_links(database)[send_id] == (None, None)


def test_update_rows_rolls_back_with_transaction(database: Database) -> None:
    send_id = add_send(database)
    evidence_id = add_evidence(database)

    rows = [(send_id, evidence_id, MatchRule.MESSAGE_ID.value)]

    def update_then_fail() -> None:
        with database.write() as session:
            update_rows(session.connection(), SEND_TABLE, ("evidence_id", "match_rule"), rows)
            raise RuntimeError("abandon the transaction")

    with pytest.raises(RuntimeError):
        update_then_fail()

    assert stored_links(database)[send_id] == (None, None)


@pytest.mark.parametrize(
    "sent_at",
    [
        SENT,
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 6, 30, 19, 0, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_datetime_read_back_aware_utc(database: Database, sent_at: datetime) -> None:
    send_id = add_send(database, sent_at=sent_at)

    with database.session() as session:
        stored = session.get(Send, send_id)
        core_value = (
            session.connection()
            .execute(select(SEND_TABLE.c.sent_at).where(SEND_TABLE.c.id == send_id))
            .scalar_one()
        )

    assert stored is not None
    assert stored.sent_at == sent_at
    assert stored.sent_at.utcoffset() == timedelta(0)
    assert core_value == sent_at
    assert core_value.tzinfo is not None
