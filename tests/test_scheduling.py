"""Scheduling rules with a frozen clock: intervals, misfires, cron in Bogotá, backoff, time limits.

The APScheduler tests drive a real scheduler whose timer is replaced by explicit calls, with
DebugExecutor running each job in the test's thread, so no test sleeps.
"""

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from sqlalchemy import create_engine

from acuse.scheduling import (
    JOB_EXECUTOR,
    Backoff,
    JobOutcome,
    JobRun,
    JobRunner,
    JobSpec,
    RunningJobs,
    cron_trigger,
    interval_trigger,
    job_options,
)
from config.crontab import crontab_weekdays
from config.errors import AcuseError

BOGOTA = ZoneInfo("America/Bogota")
START = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


class ManualScheduler(BaseScheduler):
    """An APScheduler whose due jobs run only when ``run_due`` is called."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass

    def _start_timer(self, wait_seconds: float | None) -> None:
        pass

    def run_due(self) -> None:
        # APScheduler 3 has no public "run what is due now"; its timer calls this method.
        self._process_jobs()


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def make_spec(
    func: Callable[[JobRun], None],
    every: timedelta = FIVE_MINUTES,
    timeout: timedelta = timedelta(minutes=1),
    **fields: Any,
) -> JobSpec:
    values: dict[str, Any] = {
        "id": "poll:TDP2",
        "func": func,
        "trigger": interval_trigger(every, BOGOTA),
        "fingerprint": "f1",
        "timeout": timeout,
        "retry_base": every,
        "project": "TDP2",
        "mailbox": "INBOX",
    }
    values.update(fields)
    return JobSpec(**values)


def failing(run: JobRun) -> None:
    message = "The mailbox of project TDP2 did not reply."
    raise AcuseError(message)


def succeeding(run: JobRun) -> None:
    pass


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(START) as factory:
        yield factory


@pytest.fixture
def scheduler(frozen: FrozenDateTimeFactory) -> Iterator[ManualScheduler]:
    manual = ManualScheduler(timezone=UTC, executors={JOB_EXECUTOR: DebugExecutor()})
    manual.start()
    yield manual
    manual.shutdown()


def schedule(scheduler: ManualScheduler, spec: JobSpec) -> list[JobOutcome]:
    outcomes: list[JobOutcome] = []
    runner = JobRunner(RunningJobs(threading.Event()), on_outcome=outcomes.append)
    scheduler.add_job(**job_options(spec, runner, datetime.now(UTC)))
    return outcomes


def test_job_options_guard_runs() -> None:
    spec = make_spec(succeeding)
    runner = JobRunner(RunningJobs(threading.Event()))

    options = job_options(spec, runner, START)

    assert options["coalesce"] is True
    assert options["max_instances"] == 1
    assert options["misfire_grace_time"] == 300
    assert options["next_run_time"] == START


def test_interval_runs_each_turn(scheduler: ManualScheduler, frozen: FrozenDateTimeFactory) -> None:
    outcomes = schedule(scheduler, make_spec(succeeding))

    scheduler.run_due()
    frozen.move_to(START + timedelta(minutes=4))
    scheduler.run_due()
    frozen.move_to(START + FIVE_MINUTES)
    scheduler.run_due()

    assert [outcome.started_at for outcome in outcomes] == [START, START + FIVE_MINUTES]


def test_pause_runs_once_late(scheduler: ManualScheduler, frozen: FrozenDateTimeFactory) -> None:
    outcomes = schedule(scheduler, make_spec(succeeding))
    scheduler.run_due()

    # The process was stopped for three hours and two minutes: 36 turns were missed.
    resumed = START + timedelta(hours=3, minutes=2)
    frozen.move_to(resumed)
    scheduler.run_due()

    assert len(outcomes) == 2
    assert outcomes[1].started_at == resumed


def test_default_grace_drops_late_run(
    scheduler: ManualScheduler, frozen: FrozenDateTimeFactory
) -> None:
    # What job_options avoids: with APScheduler's default grace of one second, the one
    # catch-up run after a pause is dropped as missed.
    runs: list[datetime] = []
    scheduler.add_job(
        lambda: runs.append(datetime.now(UTC)),
        interval_trigger(FIVE_MINUTES, BOGOTA),
        executor=JOB_EXECUTOR,
        coalesce=True,
        next_run_time=START,
    )
    scheduler.run_due()

    frozen.move_to(START + timedelta(hours=3, minutes=2))
    scheduler.run_due()

    assert runs == [START]


def test_cron_uses_bogota_time() -> None:
    trigger = cron_trigger("0 7 * * 1-5", BOGOTA)

    # Tuesday 3 November 2026, 06:00 in Bogotá.
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 3, 11, 0, tzinfo=UTC))

    assert fire == datetime(2026, 11, 3, 7, 0, tzinfo=BOGOTA)
    assert fire.astimezone(UTC) == datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def test_cron_skips_weekend() -> None:
    trigger = cron_trigger("0 7 * * 1-5", BOGOTA)

    # Friday 6 November 2026, 08:00 in Bogotá: the next weekday 07:00 is Monday.
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 6, 13, 0, tzinfo=UTC))

    assert fire == datetime(2026, 11, 9, 7, 0, tzinfo=BOGOTA)


def test_cron_sunday_as_seven() -> None:
    trigger = cron_trigger("30 6 * * 7", BOGOTA)

    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))

    assert fire == datetime(2026, 11, 8, 6, 30, tzinfo=BOGOTA)


def test_crontab_weekdays_renamed() -> None:
    assert crontab_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_weekdays("0,6") == "sun,sat"
    assert crontab_weekdays("*/2") == "sun,tue,thu,sat"
    assert crontab_weekdays("mon-fri") == "mon-fri"


def test_cron_job_fires_at_local_time(
    scheduler: ManualScheduler, frozen: FrozenDateTimeFactory
) -> None:
    frozen.move_to(datetime(2026, 11, 3, 11, 0, tzinfo=UTC))
    spec = make_spec(succeeding, trigger=cron_trigger("0 7 * * *", BOGOTA), run_at_start=False)
    outcomes = schedule(scheduler, spec)

    frozen.move_to(datetime(2026, 11, 3, 11, 59, tzinfo=UTC))
    scheduler.run_due()
    frozen.move_to(datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    scheduler.run_due()

    assert [outcome.started_at for outcome in outcomes] == [
        datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    ]


def test_backoff_doubles_to_ceiling() -> None:
    backoff = Backoff(FIVE_MINUTES, maximum=timedelta(minutes=30))

    delays = [backoff.delay(failures) for failures in range(1, 7)]

    assert delays == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=30),
        timedelta(minutes=30),
        timedelta(minutes=30),
    ]


def test_backoff_skips_turns() -> None:
    clock = FakeClock(START)
    runner = JobRunner(RunningJobs(threading.Event()), clock)
    spec = make_spec(failing)
    outcomes = []

    for _turn in range(8):
        outcomes.append(runner.run(spec))
        clock.advance(FIVE_MINUTES)

    ran = [outcome.started_at - START for outcome in outcomes if not outcome.skipped]
    assert ran == [timedelta(minutes=minutes) for minutes in (0, 5, 15, 35)]


def test_backoff_ends_on_success() -> None:
    clock = FakeClock(START)
    runner = JobRunner(RunningJobs(threading.Event()), clock)
    attempts: list[int] = []

    def flaky(run: JobRun) -> None:
        attempts.append(1)
        if len(attempts) <= 2:
            failing(run)

    spec = make_spec(flaky)
    for _turn in range(6):
        runner.run(spec)
        clock.advance(FIVE_MINUTES)

    # Fails at 0 and 5, skips 10, succeeds at 15, then runs every turn (20 and 25).
    assert len(attempts) == 5
    assert runner.backoff(spec).failures == 0


def test_failure_logged_with_ids(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner(RunningJobs(threading.Event()), FakeClock(START))

    with caplog.at_level(logging.WARNING, logger="acuse.scheduling"):
        outcome = runner.run(make_spec(failing))

    record = next(r for r in caplog.records if r.getMessage() == "job failed; retrying later")
    assert outcome.error == "The mailbox of project TDP2 did not reply."
    assert record.project == "TDP2"  # type: ignore[attr-defined]
    assert record.mailbox == "INBOX"  # type: ignore[attr-defined]
    assert record.consecutive_failures == 1  # type: ignore[attr-defined]


def test_unexpected_error_is_caught(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner(RunningJobs(threading.Event()), FakeClock(START))

    def broken(run: JobRun) -> None:
        raise KeyError("cursor")

    with caplog.at_level(logging.ERROR, logger="acuse.scheduling"):
        outcome = runner.run(make_spec(broken))

    assert outcome.error == "KeyError: 'cursor'"
    assert "job raised an unexpected error" in caplog.text
    assert "Traceback" in caplog.text


def test_deadline_aborts_run() -> None:
    running = RunningJobs(threading.Event())
    spec = make_spec(succeeding, timeout=timedelta(minutes=1))
    aborted: list[str] = []

    with running.track(spec, START) as run:
        run.on_abort(lambda: aborted.append("socket closed"))
        early = running.enforce_deadlines(START + timedelta(seconds=59))
        late = running.enforce_deadlines(START + timedelta(minutes=1))

        assert early == []
        assert late == []
        assert aborted == ["socket closed"]
        assert not run.should_continue()


def test_run_hung_after_abort() -> None:
    running = RunningJobs(threading.Event())
    spec = make_spec(succeeding, timeout=timedelta(minutes=1))

    with running.track(spec, START) as run:
        running.enforce_deadlines(START + timedelta(minutes=1))
        hung = running.enforce_deadlines(START + timedelta(minutes=2))

        assert hung == [run]


def test_aborted_run_reports_time_limit() -> None:
    clock = FakeClock(START)
    running = RunningJobs(threading.Event())
    runner = JobRunner(running, clock)

    def slow(run: JobRun) -> None:
        running.enforce_deadlines(START + timedelta(minutes=2))

    outcome = runner.run(make_spec(slow))

    assert outcome.error == "the job was aborted after its time limit of 0:01:00"


def test_stop_signal_ends_work() -> None:
    stop = threading.Event()
    running = RunningJobs(stop)

    with running.track(make_spec(succeeding), START) as run:
        before = run.should_continue()
        stop.set()
        after = run.should_continue()

    assert before
    assert not after


def test_wait_until_idle() -> None:
    running = RunningJobs(threading.Event())

    with running.track(make_spec(succeeding), START):
        busy = running.wait_until_idle(timedelta(0))

    assert not busy
    assert running.wait_until_idle(timedelta(0))


def test_database_error_hides_sql(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    runner = JobRunner(RunningJobs(threading.Event()), FakeClock(START))

    def write(run: JobRun) -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("INSERT INTO secret_table VALUES ('canary')")

    try:
        outcome = runner.run(make_spec(write))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()

    assert outcome.error == "OperationalError: database is locked"
