"""The daemon's one-line status in both languages, as the operator guides quote it."""

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from acuse.scheduling import JobOutcome, JobSpec
from acuse.status_line import StatusBoard
from config.i18n import activate

FINISHED = datetime(2026, 11, 4, 15, 5, 12, tzinfo=UTC)


def poll_outcome(folder: str, error: str | None = None) -> JobOutcome:
    spec = JobSpec(
        id="poll:TDP2",
        func=lambda run: None,
        trigger=IntervalTrigger(minutes=5),
        fingerprint="test",
        timeout=timedelta(minutes=5),
        retry_base=timedelta(seconds=30),
        project="TDP2",
        mailbox=folder,
    )
    return JobOutcome(spec, FINISHED - timedelta(seconds=3), FINISHED, error=error)


def board_with(*outcomes: JobOutcome) -> StatusBoard:
    board = StatusBoard()
    for outcome in outcomes:
        board.record(outcome)
    return board


def test_english_summary_counts_mailboxes() -> None:
    activate("en")
    board = board_with(poll_outcome("INBOX"), poll_outcome("Evidencias"))

    summary = board.summary()

    assert summary.startswith(
        "2 of 2 mailboxes polled without error; last job poll:TDP2 succeeded at "
    )


def test_spanish_summary_singular() -> None:
    activate("es_CO")
    board = board_with(poll_outcome("INBOX"))

    summary = board.summary()

    assert summary.startswith(
        "1 de 1 buzón revisado sin errores; última tarea poll:TDP2 correcta a las "
    )


def test_spanish_summary_lists_failures() -> None:
    activate("es_CO")
    board = board_with(poll_outcome("INBOX"), poll_outcome("Evidencias", error="timed out"))

    summary = board.summary()

    assert summary.startswith("1 de 2 buzones revisados sin errores; con fallos: TDP2/Evidencias; ")
    assert "última tarea poll:TDP2 fallida a las " in summary
