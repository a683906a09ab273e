"""Matching rules: Message-ID, reference, subject and time, ties and one-to-one assignment."""

import re
from datetime import UTC, datetime, timedelta

from monitor.models import EvidenceKind
from reconcile.matching import (
    EvidenceItem,
    SendItem,
    Window,
    match_by_message_id,
    match_in_time_order,
    match_recipient,
    match_recipientless,
)
from reconcile.models import MatchRule

WINDOW = Window(before=timedelta(minutes=15), after=timedelta(hours=6))
DELIVERED = EvidenceKind.DELIVERED
FAILED = EvidenceKind.DELIVERY_FAILED


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 3, hour, minute, second, tzinfo=UTC)


def send(send_id: int, time: datetime, subject: str = "Estado de cuenta", **extra: str) -> SendItem:
    return SendItem(id=send_id, recipient="ana@example.com", subject=subject, sent_at=time, **extra)


def evidence(
    evidence_id: int,
    time: datetime,
    kind: EvidenceKind = DELIVERED,
    subject: str = "Estado de cuenta",
    **extra: str,
) -> EvidenceItem:
    return EvidenceItem(
        id=evidence_id, recipient="ana@example.com", subject=subject, time=time, kind=kind, **extra
    )


def by_subject(
    sends: list[SendItem], items: list[EvidenceItem]
) -> dict[int, tuple[int, MatchRule]]:
    result = match_in_time_order(
        sends, items, str.casefold, WINDOW, MatchRule.RECIPIENT_SUBJECT_TIME
    )
    return result.links


def test_message_id_links_same_recipient() -> None:
    sends = [send(1, at(10), message_id="m1@paco"), send(2, at(10), message_id="m2@paco")]
    items = [evidence(7, at(12), original_message_id="m2@paco")]

    result = match_by_message_id(sends, items)

    assert result.links == {2: (7, MatchRule.MESSAGE_ID)}


def test_message_id_ignores_other_recipient() -> None:
    sends = [send(1, at(10), message_id="m1@paco")]
    other = EvidenceItem(7, "luis@example.com", "Estado de cuenta", at(10), DELIVERED, "m1@paco")

    result = match_by_message_id(sends, [other])

    assert result.links == {}


def test_time_order_is_one_to_one() -> None:
    sends = [send(1, at(10)), send(2, at(11))]
    items = [evidence(7, at(10, 0, 30)), evidence(8, at(11, 0, 30))]

    links = by_subject(sends, items)

    assert links[1][0] == 7
    assert links[2][0] == 8


def test_evidence_goes_to_latest_earlier_send() -> None:
    sends = [send(1, at(10)), send(2, at(11))]

    links = by_subject(sends, [evidence(8, at(11, 0, 30))])

    assert links == {2: (8, MatchRule.RECIPIENT_SUBJECT_TIME)}


def test_late_evidence_fills_older_send() -> None:
    sends = [send(1, at(10)), send(2, at(11))]
    items = [evidence(8, at(11, 0, 30)), evidence(9, at(11, 30))]

    links = by_subject(sends, items)

    assert links[2][0] == 8
    assert links[1][0] == 9


def test_clock_skew_allows_evidence_before_send() -> None:
    links = by_subject([send(1, at(10, 5))], [evidence(7, at(10, 0))])

    assert links == {1: (7, MatchRule.RECIPIENT_SUBJECT_TIME)}


def test_evidence_outside_window_is_not_linked() -> None:
    links = by_subject([send(1, at(10))], [evidence(7, at(17))])

    assert links == {}


def test_different_subject_is_not_linked() -> None:
    links = by_subject([send(1, at(10))], [evidence(7, at(10, 1), subject="Carta de recaudo")])

    assert links == {}


def test_duplicate_evidence_links_once() -> None:
    result = match_in_time_order(
        [send(1, at(10))],
        [evidence(7, at(10, 1)), evidence(8, at(10, 2))],
        str.casefold,
        WINDOW,
        MatchRule.RECIPIENT_SUBJECT_TIME,
    )

    assert result.links == {1: (7, MatchRule.RECIPIENT_SUBJECT_TIME)}
    assert result.ambiguous == {}


def test_identical_sends_same_outcome_are_linked() -> None:
    sends = [send(1, at(10)), send(2, at(10))]
    items = [evidence(7, at(10, 1)), evidence(8, at(10, 1))]

    links = by_subject(sends, items)

    assert {links[1][0], links[2][0]} == {7, 8}


def test_identical_sends_different_outcomes_are_ambiguous() -> None:
    sends = [send(1, at(10)), send(2, at(10))]
    items = [evidence(7, at(10, 1)), evidence(8, at(10, 2), kind=FAILED)]

    result = match_in_time_order(
        sends, items, str.casefold, WINDOW, MatchRule.RECIPIENT_SUBJECT_TIME
    )

    assert result.links == {}
    assert result.ambiguous == {1: [7, 8], 2: [7, 8]}


def test_tied_evidence_with_different_outcomes_is_ambiguous() -> None:
    items = [evidence(7, at(10, 1)), evidence(8, at(10, 1), kind=FAILED)]

    result = match_in_time_order(
        [send(1, at(10))], items, str.casefold, WINDOW, MatchRule.RECIPIENT_SUBJECT_TIME
    )

    assert result.links == {}
    assert result.ambiguous == {1: [7, 8]}


def test_reference_rule_before_subject() -> None:
    pattern = re.compile(r"NEG-(\d+)")

    def reference(subject: str) -> str | None:
        found = pattern.search(subject)
        return found.group(1) if found else None

    sends = [
        send(1, at(10), subject="Estado de cuenta NEG-101"),
        send(2, at(10), subject="Estado de cuenta NEG-102"),
    ]
    items = [evidence(7, at(10, 1), subject="Estado de cuenta NEG-102", kind=FAILED)]

    result = match_recipient(
        sends, items, normalize_subject=str.casefold, reference=reference, window=WINDOW
    )

    assert result.links == {2: (7, MatchRule.REFERENCE)}
    assert result.ambiguous == {}


def test_message_id_wins_over_subject() -> None:
    sends = [send(1, at(10), message_id="m1@paco"), send(2, at(11), message_id="m2@paco")]
    items = [evidence(7, at(11, 0, 30), original_message_id="m1@paco")]

    result = match_recipient(
        sends, items, normalize_subject=str.casefold, reference=None, window=WINDOW
    )

    assert result.links == {1: (7, MatchRule.MESSAGE_ID)}


def test_recipientless_notice_covers_whole_email() -> None:
    sends = [
        SendItem(1, "ana@example.com", "Estado de cuenta", at(10)),
        SendItem(2, "luis@example.com", "Estado de cuenta", at(10)),
        SendItem(3, "ana@example.com", "Estado de cuenta", at(8)),
        SendItem(4, "ana@example.com", "Carta de recaudo", at(10)),
    ]
    notice = EvidenceItem(9, None, "Estado de cuenta", at(10, 2), EvidenceKind.REJECTED)

    covered = match_recipientless(sends, notice, normalize_subject=str.casefold, window=WINDOW)

    assert covered == [1, 2]
