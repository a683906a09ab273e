"""One reconciliation pass of a project: match sends to evidence, then judge states.

The stored result is a function of the stored sends and evidence alone, never of when each
arrived or of where one pass ended. A pass judges each recipient it looks at afresh: it clears
the recipient's links and ambiguity, then matches every send and every piece of evidence of that
recipient again. Evidence that arrives after a send was linked can therefore still make it
ambiguous.

A pass runs two rounds: first the evidence whose trust verdict is not unverified, then the
unverified evidence for the sends still without any, so a forged certificate never takes a send
away from a genuine one. In each round, notices that name no recipient go first: each covers
every recipient of the one email it concerns, chosen among all the sends of the project, and a
send two notices choose goes to the earlier one. A recipient's own evidence of that email with
another outcome makes the covered send ambiguous. The pass streams both sides ordered by
recipient, so it holds one recipient's rows at a time, and writes links in batches. Everything a
pass writes commits together, so a crash leaves the previous result.

A pass after one that found only added sends and evidence judges again only the recipients they
touch (``rejudged_recipients``), and a pass that finds nothing new only moves sends past their
deadline (``reconcile.incremental``).
"""

import functools
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    union,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update
from sqlmodel import Session, col

from config.database import Database, update_rows, utcnow
from config.settings import ProjectView
from monitor.models import Evidence, EvidenceKind, StoredMessage, TrustVerdict
from monitor.provider import rules_for
from reconcile.incremental import (
    MatchInputs,
    PassScope,
    added_recipients,
    match_inputs,
    pass_scope,
    update_deadline_states,
    update_open_states,
)
from reconcile.matching import (
    EvidenceItem,
    MatchResult,
    SendItem,
    Window,
    agrees_with_send,
    match_recipient,
    match_recipientless,
)
from reconcile.models import MatchCandidate, MatchRule, ReconcileRun, Send, SendState
from reconcile.states import state_expression

log = logging.getLogger(__name__)

_FLUSH_EVERY = 2000
_SUBJECT_CACHE_SIZE = 100_000


@dataclass
class ReconcileSummary:
    """The counts of one pass over one project; ``count_states`` gives the resulting states."""

    project: str
    as_of: datetime
    matched: int = 0
    ambiguous: int = 0
    state_changes: int = 0


def subject_normalizer(project: ProjectView) -> Callable[[str], str]:
    """The function that reduces a subject to what matching compares, for the project's provider."""
    return rules_for(project.provider).normalize_subject


def reference_extractor(pattern: str | None) -> Callable[[str], str | None] | None:
    """Build the function that pulls a project's reference token out of a subject."""
    if pattern is None:
        return None
    compiled = re.compile(pattern)

    def extract(subject: str) -> str | None:
        found = compiled.search(subject)
        if found is None:
            return None
        token = found.group(1) if compiled.groups else found.group(0)
        return token.strip().casefold() or None

    return extract


def evidence_time() -> ColumnElement[datetime]:
    """When the provider saw the send: the certificate's send time, else the best time known."""
    return func.coalesce(
        col(Evidence.sent_at),
        col(Evidence.delivered_at),
        col(StoredMessage.header_date),
        col(Evidence.received_at),
    )


def _recipient_order(database: Database, column: Any) -> Any:
    # Streams are merged in Python, so the database must sort by code point as Python does.
    if database.dialect == "postgresql":
        return column.collate("C")
    return column


def _unverified(verdict: ColumnElement[str] | object) -> ColumnElement[bool]:
    return verdict == TrustVerdict.UNVERIFIED.value  # type: ignore[return-value]


def _within(column: Any, scope: Select[Any] | None) -> ColumnElement[bool]:
    """Limit a query to the recipients of ``scope``; no limit when it is None."""
    if scope is None:
        return true()
    return column.in_(scope)  # type: ignore[no-any-return]


def _scope_sends(
    session: Session, database: Database, project: str, scope: Select[Any] | None
) -> Iterator[SendItem]:
    query = (
        select(
            col(Send.id),
            col(Send.recipient),
            col(Send.subject),
            col(Send.sent_at),
            col(Send.message_id),
        )
        .where(col(Send.project) == project, _within(col(Send.recipient), scope))
        .order_by(_recipient_order(database, col(Send.recipient)), col(Send.sent_at), col(Send.id))
    )
    for row in _stream(session, query):
        yield SendItem(*row)


def _stream(session: Session, query: Executable) -> Iterator[Any]:
    """Yield the rows of ``query`` in batches, as Core rows: the ORM's per-row work would
    cost more than the query itself."""
    connection = session.connection().execution_options(yield_per=_FLUSH_EVERY)
    yield from connection.execute(query)


def _evidence_query(project: str, trusted: bool):  # type: ignore[no-untyped-def]
    unverified = _unverified(col(Evidence.trust_verdict))
    return (
        select(
            col(Evidence.id),
            col(Evidence.recipient),
            col(Evidence.subject),
            evidence_time().label("time"),
            col(Evidence.kind),
            col(Evidence.original_message_id),
        )
        .join(StoredMessage, col(StoredMessage.id) == col(Evidence.message_pk))
        .where(col(Evidence.project) == project, ~unverified if trusted else unverified)
    )


def _evidence_item(row) -> EvidenceItem:  # type: ignore[no-untyped-def]
    return EvidenceItem(
        row.id,
        row.recipient,
        row.subject or "",
        row.time,
        EvidenceKind(row.kind),
        row.original_message_id,
    )


def _scope_evidence(
    session: Session, database: Database, project: str, trusted: bool, scope: Select[Any] | None
) -> Iterator[EvidenceItem]:
    query = (
        _evidence_query(project, trusted)
        .where(col(Evidence.recipient).is_not(None), _within(col(Evidence.recipient), scope))
        .order_by(_recipient_order(database, col(Evidence.recipient)), "time", col(Evidence.id))
    )
    for item_id, recipient, subject, time, kind, original_message_id in _stream(session, query):
        # The kind column's type already returns EvidenceKind members.
        yield EvidenceItem(item_id, recipient, subject or "", time, kind, original_message_id)


def _pair_by_recipient(
    sends: Iterator[SendItem], evidence: Iterator[EvidenceItem]
) -> Iterator[tuple[list[SendItem], list[EvidenceItem]]]:
    """Yield the sends and evidence of each recipient that has both, from two sorted streams."""
    send_groups = groupby(sends, key=lambda item: item.recipient)
    evidence_groups = groupby(evidence, key=lambda item: item.recipient or "")
    send_entry = next(send_groups, None)
    evidence_entry = next(evidence_groups, None)
    while send_entry is not None and evidence_entry is not None:
        send_recipient, evidence_recipient = send_entry[0], evidence_entry[0]
        if send_recipient < evidence_recipient:
            send_entry = next(send_groups, None)
        elif evidence_recipient < send_recipient:
            evidence_entry = next(evidence_groups, None)
        else:
            yield list(send_entry[1]), list(evidence_entry[1])
            send_entry = next(send_groups, None)
            evidence_entry = next(evidence_groups, None)


_SEND_TABLE = Send.__table__  # type: ignore[attr-defined]


class _LinkWriter:
    """Buffers match results and writes them in batches inside the pass's transaction.

    Links are written by a background thread while matching goes on, since the database
    driver releases the GIL while it executes: on SQLite, writing links costs about as much as
    a third of the matching. The same thread then stores the state of the sends just linked
    with ``linked_states``, so the pass's closing state update finds them done. A linked send
    keeps its link to the end of the pass, so that state is final. The pass's session is used
    by one thread at a time, because every other use of it first waits for the write in
    progress (``wait``).
    """

    def __init__(self, session: Session, linked_states: Update) -> None:
        self.session = session
        self.linked_states = linked_states
        # The number of sends whose state the writer thread changed, valid after ``wait``.
        self.state_changes = 0
        self.links: list[tuple[int, int, str]] = []
        self.ambiguous: list[tuple[int, list[int]]] = []
        self.matched = 0
        self.ambiguous_count = 0
        # Sends linked or made ambiguous in this pass, which the reader session cannot see.
        self.taken: set[int] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acuse-links")
        self._pending: Future[None] | None = None

    def add(self, result: MatchResult) -> None:
        for send_id, (evidence_id, rule) in result.links.items():
            self.links.append((send_id, evidence_id, rule.value))
        self.ambiguous.extend(result.ambiguous.items())
        self.taken.update(result.links)
        self.taken.update(result.ambiguous)
        if len(self.links) + len(self.ambiguous) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Start writing the buffered links, and write the buffered ambiguity."""
        self.wait()
        if self.links:
            links, self.links = self.links, []
            connection = self.session.connection()
            self._pending = self._executor.submit(self._write_links, connection, links)
            self.matched += len(links)
        if not self.ambiguous:
            return

        self.wait()
        for send_id, candidate_ids in self.ambiguous:
            self.session.execute(
                update(Send)
                .where(col(Send.id) == send_id)
                .values(candidates=",".join(map(str, candidate_ids)))
            )
            self.session.add_all(
                MatchCandidate(send_id=send_id, evidence_id=eid) for eid in candidate_ids
            )
        self.ambiguous_count += len(self.ambiguous)
        self.ambiguous = []
        self.session.flush()

    def _write_links(self, connection: Connection, links: list[tuple[int, int, str]]) -> None:
        update_rows(connection, _SEND_TABLE, ("evidence_id", "match_rule"), links)
        send_ids = [send_id for send_id, _evidence_id, _rule in links]
        result = connection.execute(self.linked_states, {"send_ids": send_ids})
        self.state_changes += int(getattr(result, "rowcount", 0) or 0)

    def wait(self) -> None:
        """Wait for the write in progress, raising its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the write in progress, then stop the writer thread."""
        try:
            self.wait()
        finally:
            self._executor.shutdown()


def _forget_matches(session: Session, project: str, scope: Select[Any] | None) -> None:
    """Forget the links and ambiguity of the sends in ``scope``, so they are judged afresh."""
    in_scope = and_(col(Send.project) == project, _within(col(Send.recipient), scope))
    session.execute(
        delete(MatchCandidate).where(
            col(MatchCandidate.send_id).in_(select(col(Send.id)).where(in_scope))
        )
    )
    matched = or_(col(Send.evidence_id).is_not(None), col(Send.candidates).is_not(None))
    session.execute(
        update(Send)
        .where(in_scope, matched)
        .values(evidence_id=None, match_rule=None, candidates=None)
        .execution_options(synchronize_session=False)
    )


def _match_recipientless(
    session: Session,
    project: ProjectView,
    rules: "_Rules",
    *,
    trusted: bool,
    taken: set[int],
) -> dict[int, EvidenceItem]:
    """Return the notice that covers each send, for notices that name no recipient.

    A notice covers every recipient of the email it concerns. Each notice chooses its email
    among all the project's sends, whatever their links, so the choice depends on the stored
    sends alone. Only the sends in the pass's scope that ``taken`` lacks are returned.
    """
    window = rules.window
    covered: dict[int, EvidenceItem] = {}
    notices = session.execute(
        _evidence_query(project.code, trusted)
        .where(col(Evidence.recipient).is_(None))
        .order_by("time", col(Evidence.id))
    ).all()
    for row in notices:
        notice = _evidence_item(row)
        sends = session.execute(
            select(
                col(Send.id),
                col(Send.recipient),
                col(Send.subject),
                col(Send.sent_at),
                col(Send.message_id),
                _within(col(Send.recipient), rules.scope).label("in_scope"),
            ).where(
                col(Send.project) == project.code,
                col(Send.sent_at) >= notice.time - window.after,
                col(Send.sent_at) <= notice.time + window.before,
            )
        ).all()
        items = [SendItem(r.id, r.recipient, r.subject, r.sent_at, r.message_id) for r in sends]
        linkable = {r.id for r in sends if r.in_scope} - taken - covered.keys()
        chosen = match_recipientless(
            items, notice, normalize_subject=rules.normalize_subject, window=window
        )
        for send_id in chosen:
            if send_id in linkable:
                covered[send_id] = notice
    return covered


def _contest_notices(
    sends: list[SendItem],
    evidence: list[EvidenceItem],
    covered: dict[int, EvidenceItem],
    result: MatchResult,
    rules: "_Rules",
) -> None:
    """Move a send from ``covered`` to the ambiguous sends of ``result`` when it contradicts.

    It contradicts when its recipient's own evidence of the same email, which ``result`` left
    unclaimed, reports another outcome than the notice.
    """
    claimed = result.claimed_evidence
    for send in sends:
        notice = covered.get(send.id)
        if notice is None:
            continue
        # Evidence about one email carries that email's send time, as the notice does.
        contradicting = [
            item.id
            for item in evidence
            if item.id not in claimed
            and item.time == notice.time
            and item.kind is not notice.kind
            and agrees_with_send(send, item, rules.normalize_subject, rules.window)
        ]
        if contradicting:
            del covered[send.id]
            result.ambiguous[send.id] = sorted([notice.id, *contradicting])
            claimed.update(contradicting)


def _notice_links(covered: dict[int, EvidenceItem]) -> MatchResult:
    links = {send_id: (notice.id, MatchRule.SUBJECT_TIME) for send_id, notice in covered.items()}
    return MatchResult(links=links)


def rejudged_recipients(session: Session, project: ProjectView, since: MatchInputs) -> Select[Any]:
    """Select the recipients whose matching may differ from the pass of ``since``.

    Those are the recipients of the sends and evidence added since. A notice that names no
    recipient chooses its email among the sends of every recipient. So when a notice is new, or
    an added send falls in its window, every recipient with a send in that window is judged again.
    """
    window = Window(project.match_window_before, project.match_window_after)
    spans = [
        col(Send.sent_at).between(time - window.after, time + window.before)
        for time in _touched_notice_times(session, project.code, since, window)
    ]
    added = added_recipients(project.code, since)
    if not spans:
        return added
    covered = select(col(Send.recipient)).where(col(Send.project) == project.code, or_(*spans))
    return select(union(added, covered).subquery().c[0])


def _touched_notice_times(
    session: Session, project: str, since: MatchInputs, window: Window
) -> list[datetime]:
    """Return the times of the notices without recipient that are new or cover an added send."""
    notices = session.execute(
        select(col(Evidence.id), evidence_time().label("time"))
        .join(StoredMessage, col(StoredMessage.id) == col(Evidence.message_pk))
        .where(col(Evidence.project) == project, col(Evidence.recipient).is_(None))
    ).all()
    added_send = select(col(Send.id)).where(
        col(Send.project) == project, col(Send.id) > since.last_send_id
    )
    touched = []
    for notice_id, time in notices:
        covers_added = session.execute(
            added_send.where(
                col(Send.sent_at).between(time - window.after, time + window.before)
            ).limit(1)
        ).first()
        if notice_id > since.last_evidence_id or covers_added is not None:
            touched.append(time)
    return touched


def release_evidence(session: Session, evidence_ids: list[int]) -> None:
    """Unlink every send from the evidence ``evidence_ids``, before that evidence is deleted.

    The sends become open again, and ambiguity that named this evidence is forgotten, so the
    next reconciliation pass judges them afresh.
    """
    if not evidence_ids:
        return
    candidate_sends = select(col(MatchCandidate.send_id)).where(
        col(MatchCandidate.evidence_id).in_(evidence_ids)
    )
    session.execute(
        update(Send)
        .where(col(Send.id).in_(candidate_sends))
        .values(candidates=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(MatchCandidate).where(col(MatchCandidate.evidence_id).in_(evidence_ids)))
    session.execute(
        update(Send)
        .where(col(Send.evidence_id).in_(evidence_ids))
        .values(evidence_id=None, match_rule=None)
        .execution_options(synchronize_session=False)
    )


def update_states(session: Session, project: ProjectView, as_of: datetime, now: datetime) -> int:
    """Store each send's state at ``as_of``; return how many sends changed state."""
    changed = session.execute(
        _state_update(project, as_of, now).where(col(Send.project) == project.code)
    )
    return int(getattr(changed, "rowcount", 0) or 0)


def _state_update(project: ProjectView, as_of: datetime, now: datetime) -> Update:
    """Build an UPDATE that stores the state at ``as_of`` where it changed, for the caller to
    narrow to some sends."""
    new_state = state_expression(as_of, project.missing_after)
    return (
        update(Send)
        .where(col(Send.state) != new_state)
        .values(state=new_state, state_changed_at=now)
        .execution_options(synchronize_session=False)
    )


def count_states(session: Session, project: str) -> dict[SendState, int]:
    """Number of sends per stored state in ``project``."""
    rows = session.execute(
        select(col(Send.state), func.count())
        .where(col(Send.project) == project)
        .group_by(col(Send.state))
    ).all()
    return {SendState(state): count for state, count in rows}


@dataclass(frozen=True)
class _Rules:
    normalize_subject: Callable[[str], str]
    reference: Callable[[str], str | None] | None
    window: Window
    # The recipients to match, or None for all of them.
    scope: Select[Any] | None = None


def _match_round(
    database: Database,
    writer: _LinkWriter,
    project: ProjectView,
    rules: _Rules,
    *,
    trusted: bool,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Match the sends in scope with the evidence of one round: trustworthy, or unverified."""
    # Notices without a recipient go first: they cover whole emails, not one recipient. Their
    # sends are left out of their recipient's matching, but that recipient's evidence can
    # still contradict the notice.
    covered = _match_recipientless(
        writer.session, project, rules, trusted=trusted, taken=writer.taken
    )

    with database.session() as reader_session:
        pairs = _pair_by_recipient(
            _scope_sends(reader_session, database, project.code, rules.scope),
            _scope_evidence(reader_session, database, project.code, trusted, rules.scope),
        )
        for sends, evidence in pairs:
            open_sends = [s for s in sends if s.id not in writer.taken and s.id not in covered]
            result = match_recipient(
                open_sends,
                evidence,
                normalize_subject=rules.normalize_subject,
                reference=rules.reference,
                window=rules.window,
            )
            _contest_notices(sends, evidence, covered, result, rules)
            writer.add(result)
            if progress is not None:
                progress(len(sends))
    writer.add(_notice_links(covered))
    writer.flush()
    writer.wait()


def _match_pass(
    database: Database,
    writer_session: Session,
    project: ProjectView,
    rules: _Rules,
    summary: ReconcileSummary,
    *,
    linked_states: Update,
    progress: Callable[[int], None] | None,
) -> None:
    """Match the sends of ``rules.scope`` afresh in both rounds and count the outcome.

    ``linked_states`` stores the state of the sends that its ``send_ids`` name.
    """
    _forget_matches(writer_session, project.code, rules.scope)
    writer_session.flush()
    writer = _LinkWriter(writer_session, linked_states)
    try:
        for trusted in (True, False):
            _match_round(database, writer, project, rules, trusted=trusted, progress=progress)
    finally:
        writer.close()
    summary.matched = writer.matched
    summary.ambiguous = writer.ambiguous_count
    summary.state_changes = writer.state_changes


def reconcile_project(
    database: Database,
    project: ProjectView,
    normalize_subject: Callable[[str], str],
    as_of: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReconcileSummary:
    """Run one reconciliation pass for ``project`` at ``as_of`` (default: now).

    ``progress`` receives the number of sends of each recipient as matching reaches it.
    """
    now = utcnow()
    as_of = as_of or now
    summary = ReconcileSummary(project.code, as_of)

    with database.write(lock=f"reconcile:{project.code}") as writer_session:
        inputs = match_inputs(writer_session, project)
        last_run = writer_session.get(ReconcileRun, project.code)
        earlier = MatchInputs.decode(last_run.inputs) if last_run is not None else None
        scope = pass_scope(writer_session, project.code, inputs, earlier)
        if scope is PassScope.NOTHING:
            summary.state_changes = update_deadline_states(writer_session, project, as_of, now)
        else:
            recipients = None
            if scope is PassScope.ADDED:
                assert earlier is not None
                recipients = rejudged_recipients(writer_session, project, earlier)
            rules = _Rules(
                # Each subject is compared several times, by each rule, for sends and evidence.
                functools.lru_cache(maxsize=_SUBJECT_CACHE_SIZE)(normalize_subject),
                reference_extractor(project.settings.reference_pattern),
                Window(project.match_window_before, project.match_window_after),
                recipients,
            )
            linked_states = _state_update(project, as_of, now).where(
                col(Send.id).in_(bindparam("send_ids", expanding=True))
            )
            _match_pass(
                database,
                writer_session,
                project,
                rules,
                summary,
                linked_states=linked_states,
                progress=progress,
            )
            if recipients is None:
                summary.state_changes += update_states(writer_session, project, as_of, now)
            else:
                summary.state_changes += update_open_states(
                    writer_session, project, as_of, now, rejudged=recipients
                )

        writer_session.merge(
            ReconcileRun(
                project=project.code,
                as_of=as_of,
                finished_at=utcnow(),
                matched=summary.matched,
                ambiguous=summary.ambiguous,
                state_changes=summary.state_changes,
                inputs=inputs.encode(),
            )
        )

    log.info(
        "reconciliation pass finished",
        extra={
            "project": project.code,
            "matched": summary.matched,
            "ambiguous": summary.ambiguous,
            "state_changes": summary.state_changes,
        },
    )
    return summary
