"""One reconciliation pass of a project: match open sends to unlinked evidence, then judge states.

A pass only looks at what is still open: sends without evidence (pending, missing, not_copied,
ambiguous) and evidence that no send claims. Links, once made, stay, except that a send linked
to unverified evidence stays open for trustworthy evidence. The pass runs two rounds: first
the evidence whose trust verdict is not unverified, then the unverified evidence for the sends
still without any, so a forged certificate never takes a send away from a genuine one. The
pass streams both sides ordered by recipient, so it holds one recipient's rows at a time, and
writes links in batches. Everything a pass writes commits together, so a crash leaves the
previous result. A pass after one that found only added sends and evidence matches only their
recipients, and a pass that finds nothing new only moves sends past their deadline
(``reconcile.incremental``).
"""

import functools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlmodel import Session, col

from config.database import Database, utcnow
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
    """What one pass did for one project, and the resulting count of sends per state."""

    project: str
    as_of: datetime
    matched: int = 0
    ambiguous: int = 0
    state_changes: int = 0
    states: dict[SendState, int] = field(default_factory=dict)


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


def _open_send_filter(trusted: bool) -> ColumnElement[bool]:
    """Sends a round may link: without evidence, and in the first round also those whose
    evidence is unverified."""
    without = col(Send.evidence_id).is_(None)
    if not trusted:
        return without
    unverified_ids = select(col(Evidence.id)).where(_unverified(col(Evidence.trust_verdict)))
    return or_(without, col(Send.evidence_id).in_(unverified_ids))


def _within(column: Any, scope: Select[Any] | None) -> ColumnElement[bool]:
    """Limit a query to the recipients of ``scope``; no limit when it is None."""
    if scope is None:
        return true()
    return column.in_(scope)  # type: ignore[no-any-return]


def _open_sends(
    session: Session, database: Database, project: str, trusted: bool, scope: Select[Any] | None
) -> Iterator[SendItem]:
    query = (
        select(
            col(Send.id),
            col(Send.recipient),
            col(Send.subject),
            col(Send.sent_at),
            col(Send.message_id),
        )
        .where(
            col(Send.project) == project,
            _open_send_filter(trusted),
            _within(col(Send.recipient), scope),
        )
        .order_by(_recipient_order(database, col(Send.recipient)), col(Send.sent_at), col(Send.id))
        .execution_options(yield_per=_FLUSH_EVERY)
    )
    for row in session.execute(query):
        yield SendItem(row.id, row.recipient, row.subject, row.sent_at, row.message_id)


def _unlinked_evidence_query(project: str, trusted: bool):  # type: ignore[no-untyped-def]
    linked = exists().where(col(Send.evidence_id) == col(Evidence.id))
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
        .where(col(Evidence.project) == project, ~linked, ~unverified if trusted else unverified)
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


def _open_evidence(
    session: Session, database: Database, project: str, trusted: bool, scope: Select[Any] | None
) -> Iterator[EvidenceItem]:
    query = (
        _unlinked_evidence_query(project, trusted)
        .where(col(Evidence.recipient).is_not(None), _within(col(Evidence.recipient), scope))
        .order_by(_recipient_order(database, col(Evidence.recipient)), "time", col(Evidence.id))
        .execution_options(yield_per=_FLUSH_EVERY)
    )
    for row in session.execute(query):
        yield _evidence_item(row)


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
_LINK_UPDATE = (
    update(_SEND_TABLE)
    .where(_SEND_TABLE.c.id == bindparam("send_id"))
    .values(evidence_id=bindparam("evidence_id"), match_rule=bindparam("match_rule"))
)


class _LinkWriter:
    """Buffers match results and writes them in batches inside the pass's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.links: list[dict[str, object]] = []
        self.ambiguous: list[tuple[int, list[int]]] = []
        self.matched = 0
        self.ambiguous_count = 0
        # Sends linked or made ambiguous in this pass, which the reader session cannot see.
        self.taken: set[int] = set()

    def add(self, result: MatchResult) -> None:
        for send_id, (evidence_id, rule) in result.links.items():
            self.links.append({"send_id": send_id, "evidence_id": evidence_id, "match_rule": rule})
        self.ambiguous.extend(result.ambiguous.items())
        self.taken.update(result.links)
        self.taken.update(result.ambiguous)
        if len(self.links) + len(self.ambiguous) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.links:
            # A Core executemany skips the ORM's per-row bookkeeping of a bulk UPDATE.
            self.session.connection().execute(_LINK_UPDATE, self.links)
            self.matched += len(self.links)
            self.links = []
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


def _clear_open_candidates(session: Session, project: str, scope: Select[Any] | None) -> None:
    """Forget earlier ambiguity so that it is judged again with today's evidence."""
    open_sends = and_(_open_send_filter(trusted=True), _within(col(Send.recipient), scope))
    open_send_ids = select(col(Send.id)).where(col(Send.project) == project, open_sends)
    session.execute(delete(MatchCandidate).where(col(MatchCandidate.send_id).in_(open_send_ids)))
    session.execute(
        update(Send)
        .where(col(Send.project) == project, open_sends, col(Send.candidates).is_not(None))
        .values(candidates=None)
        .execution_options(synchronize_session=False)
    )


def _match_recipientless(
    session: Session,
    project: ProjectView,
    normalize_subject: Callable[[str], str],
    window: Window,
    *,
    trusted: bool,
    taken: set[int],
) -> MatchResult:
    """Link notices that name no recipient to every recipient of the email they concern."""
    result = MatchResult()
    notices = session.execute(
        _unlinked_evidence_query(project.code, trusted).where(col(Evidence.recipient).is_(None))
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
            ).where(
                col(Send.project) == project.code,
                _open_send_filter(trusted),
                col(Send.sent_at) >= notice.time - window.after,
                col(Send.sent_at) <= notice.time + window.before,
            )
        ).all()
        items = [SendItem(r.id, r.recipient, r.subject, r.sent_at, r.message_id) for r in sends]
        items = [item for item in items if item.id not in result.links and item.id not in taken]
        for send_id in match_recipientless(
            items, notice, normalize_subject=normalize_subject, window=window
        ):
            result.links[send_id] = (notice.id, MatchRule.SUBJECT_TIME)
    return result


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
    new_state = state_expression(as_of, project.missing_after)
    changed = session.execute(
        update(Send)
        .where(col(Send.project) == project.code, col(Send.state) != new_state)
        .values(state=new_state, state_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(changed, "rowcount", 0) or 0)


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
    """Match the open sends with the evidence of one round: trustworthy, or unverified."""
    # Notices without a recipient go first: they cover whole emails, not one recipient.
    # The reader below cannot see these uncommitted links, so their sends are skipped there.
    notice_links = _match_recipientless(
        writer.session,
        project,
        rules.normalize_subject,
        rules.window,
        trusted=trusted,
        taken=writer.taken,
    )
    writer.add(notice_links)
    writer.flush()

    with database.session() as reader_session:
        pairs = _pair_by_recipient(
            _open_sends(reader_session, database, project.code, trusted, rules.scope),
            _open_evidence(reader_session, database, project.code, trusted, rules.scope),
        )
        for sends, evidence in pairs:
            open_sends = [send for send in sends if send.id not in writer.taken]
            writer.add(
                match_recipient(
                    open_sends,
                    evidence,
                    normalize_subject=rules.normalize_subject,
                    reference=rules.reference,
                    window=rules.window,
                )
            )
            if progress is not None:
                progress(len(sends))
    writer.flush()


def _match_pass(
    database: Database,
    writer_session: Session,
    project: ProjectView,
    rules: _Rules,
    summary: ReconcileSummary,
    *,
    progress: Callable[[int], None] | None,
) -> None:
    """Match the open sends of ``rules.scope`` in both rounds and count the outcome."""
    _clear_open_candidates(writer_session, project.code, rules.scope)
    writer_session.flush()
    writer = _LinkWriter(writer_session)
    for trusted in (True, False):
        _match_round(database, writer, project, rules, trusted=trusted, progress=progress)
    summary.matched = writer.matched
    summary.ambiguous = writer.ambiguous_count


def reconcile_project(
    database: Database,
    project: ProjectView,
    normalize_subject: Callable[[str], str],
    as_of: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReconcileSummary:
    """Run one reconciliation pass for ``project`` at ``as_of`` (default: now).

    ``progress`` receives the number of open sends of each recipient as matching reaches it.
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
                recipients = added_recipients(project.code, earlier)
            rules = _Rules(
                # Each subject is compared several times, by each rule, for sends and evidence.
                functools.lru_cache(maxsize=_SUBJECT_CACHE_SIZE)(normalize_subject),
                reference_extractor(project.settings.reference_pattern),
                Window(project.match_window_before, project.match_window_after),
                recipients,
            )
            _match_pass(database, writer_session, project, rules, summary, progress=progress)
            added_only = scope is PassScope.ADDED
            store_states = update_open_states if added_only else update_states
            summary.state_changes = store_states(writer_session, project, as_of, now)

        summary.states = count_states(writer_session, project.code)
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
