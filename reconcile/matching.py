"""Pairing sends with evidence, one rule at a time, strongest rule first.

The functions here are pure: they take sends and evidence of one recipient and return links.
``reconcile.reconciliation`` streams the rows from the database and writes the results.

Time-order assignment, used by the reference and subject rules: within a bucket of sends and
evidence that share a key, each piece of evidence, in time order, goes to the latest send at or
before its time that still has no evidence and whose window contains it. Failing that, it goes to
the earliest such send after it, which absorbs clock differences between PACO and the provider.
Sends with the same time in one bucket form a group that can take as many pieces of evidence as
it has sends. A group is ambiguous when its evidence disagrees on the outcome and the sends
cannot be told apart (several identical sends, or two pieces of evidence with the same time
competing for one send): a person must then decide, so no guess is recorded.

Every piece of evidence about one email carries that email's send time. So when one send has a
delivery and a failure or rejection with the same time, they contradict each other, and the send
is ambiguous. A bounce followed by a delivery is not taken as a retry that cancels the bounce:
nothing documents that the provider retries a failed delivery and certifies the retry, while a
resend by PACO is a new row of the send log and is matched on its own.

Cross-check: the Message-ID and reference rules trust a token, so a link they make must also
agree with the send on the rest (``agrees_with_send``): the recipient, the time window and
the subject, where a subject that is the start of the other counts as the same, since mail
software may cut a long subject. A genuine certificate of another send that happens to carry
the token therefore never certifies this one; it falls through to the weaker rules, which
compare the subject anyway.
"""

import bisect
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from monitor.models import EvidenceKind
from reconcile.models import MatchRule


class SendItem(NamedTuple):
    """What matching needs of one send and recipient.

    Items are named tuples because a full pass builds one per row, and a tuple is the
    cheapest object Python builds.
    """

    id: int
    recipient: str
    subject: str
    sent_at: datetime
    message_id: str | None = None


class EvidenceItem(NamedTuple):
    """What matching needs of one piece of evidence; ``time`` is when the provider saw the send."""

    id: int
    recipient: str | None
    subject: str
    time: datetime
    kind: EvidenceKind
    original_message_id: str | None = None


@dataclass(frozen=True)
class Window:
    """How far before and after a send's logged time its evidence may be."""

    before: timedelta
    after: timedelta

    def contains(self, sent_at: datetime, evidence_time: datetime) -> bool:
        return sent_at - self.before <= evidence_time <= sent_at + self.after


@dataclass
class MatchResult:
    """Links from send id to (evidence id, rule), and ambiguous sends with their candidates."""

    links: dict[int, tuple[int, MatchRule]] = field(default_factory=dict)
    ambiguous: dict[int, list[int]] = field(default_factory=dict)

    def merge(self, other: "MatchResult") -> None:
        self.links.update(other.links)
        self.ambiguous.update(other.ambiguous)

    @property
    def claimed_evidence(self) -> set[int]:
        claimed = {evidence_id for evidence_id, _rule in self.links.values()}
        for candidates in self.ambiguous.values():
            claimed.update(candidates)
        return claimed


def subjects_agree(send_subject: str, evidence_subject: str) -> bool:
    """Return whether two normalized subjects name the same send; an empty one agrees."""
    if not send_subject or not evidence_subject:
        return True
    return send_subject.startswith(evidence_subject) or evidence_subject.startswith(send_subject)


def agrees_with_send(
    send: SendItem,
    item: EvidenceItem,
    normalize_subject: Callable[[str], str],
    window: Window,
) -> bool:
    """Return whether evidence can be about ``send``: same recipient, subject and time window."""
    if item.recipient is not None and item.recipient != send.recipient:
        return False
    if not window.contains(send.sent_at, item.time):
        return False
    return subjects_agree(normalize_subject(send.subject), normalize_subject(item.subject))


def match_by_message_id(
    sends: Iterable[SendItem],
    evidence: Iterable[EvidenceItem],
    agrees: Callable[[SendItem, EvidenceItem], bool] | None = None,
) -> MatchResult:
    """Link each send to the evidence that names its Message-ID, for the same recipient.

    With ``agrees``, evidence that names the Message-ID but disagrees with the send on
    anything else is not linked. When the evidence naming one Message-ID disagrees on the
    outcome, every send with that Message-ID is ambiguous, whichever evidence came first.
    """
    by_message_id: dict[str, list[EvidenceItem]] = defaultdict(list)
    for item in sorted(evidence, key=lambda e: (e.time, e.id)):
        if item.original_message_id:
            by_message_id[item.original_message_id].append(item)
    sends_by_message_id: dict[str, list[SendItem]] = defaultdict(list)
    for send in sends:
        if send.message_id:
            sends_by_message_id[send.message_id].append(send)

    result = MatchResult()
    for message_id, group in sends_by_message_id.items():
        fitting = {
            send.id: [
                item
                for item in by_message_id.get(message_id, [])
                if item.recipient in (None, send.recipient)
                and (agrees is None or agrees(send, item))
            ]
            for send in group
        }
        _settle_message_id(group, fitting, result)
    return result


def _settle_message_id(
    group: list[SendItem], fitting: dict[int, list[EvidenceItem]], result: MatchResult
) -> None:
    items = {item.id: item for found in fitting.values() for item in found}
    if len({item.kind for item in items.values()}) > 1:
        ordered = sorted(items.values(), key=lambda e: (e.time, e.id))
        candidate_ids = [item.id for item in ordered]
        for send in group:
            if fitting[send.id]:
                result.ambiguous[send.id] = candidate_ids
        return

    used: set[int] = set()
    for send in group:
        for item in fitting[send.id]:
            if item.id not in used:
                result.links[send.id] = (item.id, MatchRule.MESSAGE_ID)
                used.add(item.id)
                break


@dataclass
class _SendGroup:
    sent_at: datetime
    send_ids: list[int]
    assigned: list[EvidenceItem] = field(default_factory=list)

    @property
    def has_room(self) -> bool:
        return len(self.assigned) < len(self.send_ids)

    def takes_tie(self, item: EvidenceItem) -> bool:
        return bool(self.assigned) and self.assigned[-1].time == item.time


def match_in_time_order(
    sends: Iterable[SendItem],
    evidence: Iterable[EvidenceItem],
    key: Callable[[str], Hashable | None],
    window: Window,
    rule: MatchRule,
) -> MatchResult:
    """Pair sends and evidence whose subjects give the same ``key``, in time order.

    ``key`` maps a subject to the bucket it belongs to, or None when the subject has no usable
    key (such items are left for a weaker rule).
    """
    buckets: dict[Hashable, tuple[list[SendItem], list[EvidenceItem]]] = defaultdict(
        lambda: ([], [])
    )
    for send in sends:
        send_key = key(send.subject)
        if send_key is not None:
            buckets[send_key][0].append(send)
    for item in evidence:
        evidence_key = key(item.subject)
        if evidence_key is not None and evidence_key in buckets:
            buckets[evidence_key][1].append(item)

    result = MatchResult()
    for bucket_sends, bucket_evidence in buckets.values():
        if bucket_evidence:
            result.merge(_assign_bucket(bucket_sends, bucket_evidence, window, rule))
    return result


def _assign_bucket(
    sends: list[SendItem], evidence: list[EvidenceItem], window: Window, rule: MatchRule
) -> MatchResult:
    groups = _group_by_time(sends)
    times = [group.sent_at for group in groups]
    for item in sorted(evidence, key=lambda e: (e.time, e.id)):
        group = _target_group(groups, times, item, window)
        if group is not None:
            group.assigned.append(item)

    result = MatchResult()
    for group in groups:
        _settle_group(group, rule, result)
    return result


def _group_by_time(sends: list[SendItem]) -> list[_SendGroup]:
    groups: list[_SendGroup] = []
    for send in sorted(sends, key=lambda s: (s.sent_at, s.id)):
        if groups and groups[-1].sent_at == send.sent_at:
            groups[-1].send_ids.append(send.id)
        else:
            groups.append(_SendGroup(send.sent_at, [send.id]))
    return groups


def _target_group(
    groups: list[_SendGroup], times: list[datetime], item: EvidenceItem, window: Window
) -> _SendGroup | None:
    at_or_before = bisect.bisect_right(times, item.time)

    # The latest send at or before the evidence, walking back while the window allows.
    for index in range(at_or_before - 1, -1, -1):
        group = groups[index]
        if not window.contains(group.sent_at, item.time):
            break
        if group.has_room or group.takes_tie(item):
            return group

    # A send logged slightly after the evidence: the two clocks differ.
    for index in range(at_or_before, len(groups)):
        group = groups[index]
        if not window.contains(group.sent_at, item.time):
            break
        if group.has_room or group.takes_tie(item):
            return group
    return None


def _settle_group(group: _SendGroup, rule: MatchRule, result: MatchResult) -> None:
    if not group.assigned:
        return

    kinds = {item.kind for item in group.assigned}
    indistinct = len(group.send_ids) > 1 or len(group.assigned) > len(group.send_ids)
    if len(kinds) > 1 and indistinct:
        candidate_ids = [item.id for item in group.assigned]
        for send_id in group.send_ids:
            result.ambiguous[send_id] = candidate_ids
        return

    # Evidence past the group's size repeats an outcome already linked; it stays unlinked.
    for send_id, item in zip(group.send_ids, group.assigned, strict=False):
        result.links[send_id] = (item.id, rule)


def match_recipient(
    sends: list[SendItem],
    evidence: list[EvidenceItem],
    *,
    normalize_subject: Callable[[str], str],
    reference: Callable[[str], str | None] | None,
    window: Window,
) -> MatchResult:
    """Run every rule, strongest first, over the sends and evidence of one recipient."""

    def agrees(send: SendItem, item: EvidenceItem) -> bool:
        return agrees_with_send(send, item, normalize_subject, window)

    result = match_by_message_id(sends, evidence, agrees)

    def remaining() -> tuple[list[SendItem], list[EvidenceItem]]:
        claimed = result.claimed_evidence
        open_sends = [s for s in sends if s.id not in result.links and s.id not in result.ambiguous]
        open_evidence = [e for e in evidence if e.id not in claimed]
        return open_sends, open_evidence

    if reference is not None:
        open_sends, open_evidence = remaining()
        by_reference = match_in_time_order(
            open_sends, open_evidence, reference, window, MatchRule.REFERENCE
        )
        result.merge(_agreeing_links(by_reference, sends, evidence, agrees))

    open_sends, open_evidence = remaining()

    def subject_key(subject: str) -> str | None:
        return normalize_subject(subject) or None

    result.merge(
        match_in_time_order(
            open_sends, open_evidence, subject_key, window, MatchRule.RECIPIENT_SUBJECT_TIME
        )
    )
    return result


def _agreeing_links(
    result: MatchResult,
    sends: list[SendItem],
    evidence: list[EvidenceItem],
    agrees: Callable[[SendItem, EvidenceItem], bool],
) -> MatchResult:
    """Drop the links of ``result`` whose evidence disagrees with its send."""
    send_by_id = {send.id: send for send in sends}
    evidence_by_id = {item.id: item for item in evidence}
    kept = MatchResult(ambiguous=dict(result.ambiguous))
    for send_id, (evidence_id, rule) in result.links.items():
        if agrees(send_by_id[send_id], evidence_by_id[evidence_id]):
            kept.links[send_id] = (evidence_id, rule)
    return kept


def match_recipientless(
    sends: list[SendItem],
    item: EvidenceItem,
    *,
    normalize_subject: Callable[[str], str],
    window: Window,
) -> list[int]:
    """Return the sends that a notice naming no recipient applies to.

    A service rejection concerns the whole email, so it covers every recipient of the one email
    whose subject matches: the sends sharing the latest logged time at or before the notice
    inside the window, or failing that the earliest one after it.
    """
    wanted = normalize_subject(item.subject)
    if not wanted:
        return []
    candidates = [
        s
        for s in sends
        if normalize_subject(s.subject) == wanted and window.contains(s.sent_at, item.time)
    ]
    if not candidates:
        return []

    before = [s.sent_at for s in candidates if s.sent_at <= item.time]
    chosen_time = max(before) if before else min(s.sent_at for s in candidates)
    return sorted(s.id for s in candidates if s.sent_at == chosen_time)
