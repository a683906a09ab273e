"""The daemon in this process: its jobs per project, reloads, the extension point and metrics.

Projects here have no mailbox, so only reconciliation and send-log jobs run; the IMAP paths are
tested with ``acuse run`` against Dovecot in test_daemon_run.py.
"""

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from acuse.daemon import Daemon
from acuse.jobs import JOB_BUILDERS, DaemonServices, JobBuilder, build_jobs
from acuse.scheduling import JobRun, JobSpec, interval_trigger
from acuse.systemd_notify import SystemdNotifier
from config.errors import ConfigError
from config.settings import Settings
from tests.notify_socket import NotifyListener

BASE = """
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[defaults]
reconcile_interval = "1h"
"""


def project(code: str, extra: str = "") -> str:
    return f'\n[[projects]]\ncode = "{code}"\nname = "Proyecto {code}"\n{extra}\n'


def write(config: Path, text: str) -> Path:
    config.write_text(BASE + text, encoding="utf-8")
    return config


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    with NotifyListener(tmp_path) as listener:
        yield listener


def started(
    config: Path, notify: NotifyListener, builders: list[JobBuilder] | None = None
) -> Daemon:
    daemon = Daemon(config, SystemdNotifier(notify.environment()), builders=builders)
    daemon.start()
    return daemon


def job_ids(daemon: Daemon) -> set[str]:
    assert daemon.scheduler is not None
    return {job.id for job in daemon.scheduler.get_jobs()}


def test_start_schedules_jobs(tmp_path: Path, notify: NotifyListener) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2") + project("TDP3"))

    daemon = started(config, notify)
    try:
        ids = job_ids(daemon)
        ready = notify.wait_for_field("READY", timeout=10)
    finally:
        daemon.stop()

    assert ids == {
        "reconcile:TDP2",
        "reconcile:TDP3",
        "alerts:evaluate",
        "instances:renew",
        "supervisor",
    }
    assert "4 jobs" in ready["STATUS"]


def test_reload_adds_and_removes(tmp_path: Path, notify: NotifyListener) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2") + project("TDP3"))
    daemon = started(config, notify)
    try:
        write(config, project("TDP2") + project("TDP4"))

        applied = daemon.reload()

        ids = job_ids(daemon)
    finally:
        daemon.stop()

    assert applied
    assert ids == {
        "reconcile:TDP2",
        "reconcile:TDP4",
        "alerts:evaluate",
        "instances:renew",
        "supervisor",
    }


def test_reload_replaces_changed_only(tmp_path: Path, notify: NotifyListener) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2") + project("TDP3"))
    daemon = started(config, notify)
    try:
        assert daemon.scheduler is not None
        unchanged = daemon.scheduler.get_job("reconcile:TDP2").next_run_time
        write(config, project("TDP2") + project("TDP3", 'missing_after = "2h"'))

        daemon.reload()

        after = daemon.scheduler.get_job("reconcile:TDP2").next_run_time
    finally:
        daemon.stop()

    assert after == unchanged


def test_reload_keeps_schedule_of_updated_jobs(
    tmp_path: Path, notify: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify)
    try:
        assert daemon.scheduler is not None
        before = {job.id: job.next_run_time for job in daemon.scheduler.get_jobs()}
        changed = BASE.replace("[defaults]", '[defaults]\npoll_interval = "2m"')
        config.write_text(changed + '[alerts]\ngroup_window = "10m"\n' + project("TDP2"))

        with caplog.at_level("INFO", logger="acuse.daemon"):
            daemon.reload()

        after = {job.id: job.next_run_time for job in daemon.scheduler.get_jobs()}
    finally:
        daemon.stop()

    reloaded = next(r for r in caplog.records if r.getMessage() == "configuration reloaded")
    assert after["reconcile:TDP2"] == before["reconcile:TDP2"]
    assert after["alerts:evaluate"] == before["alerts:evaluate"]
    assert reloaded.__dict__["updated"] == 2
    assert reloaded.__dict__["rescheduled"] == 0
    assert reloaded.__dict__["added"] == 0


def test_reload_reschedules_changed_trigger(
    tmp_path: Path, notify: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify)
    try:
        config.write_text(BASE.replace('"1h"', '"2h"') + project("TDP2"), encoding="utf-8")

        with caplog.at_level("INFO", logger="acuse.daemon"):
            daemon.reload()
    finally:
        daemon.stop()

    reloaded = next(r for r in caplog.records if r.getMessage() == "configuration reloaded")
    assert reloaded.__dict__["rescheduled"] == 1
    assert reloaded.__dict__["updated"] == 0
    assert reloaded.__dict__["unchanged"] == reloaded.__dict__["jobs"] - 1


def test_invalid_reload_keeps_jobs(tmp_path: Path, notify: NotifyListener) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify)
    try:
        config.write_text("[[projects]]\ncode = \n", encoding="utf-8")

        applied = daemon.reload()

        ids = job_ids(daemon)
    finally:
        daemon.stop()

    assert not applied
    assert ids == {"reconcile:TDP2", "alerts:evaluate", "instances:renew", "supervisor"}
    assert notify.count("RELOADING") == 1


def test_wrong_type_reload_keeps_jobs(tmp_path: Path, notify: NotifyListener) -> None:
    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify)
    try:
        before = job_ids(daemon)
        write(config, project("TDP2") + project("NEW")).write_text(
            config.read_text(encoding="utf-8").replace("[defaults]", "[defaults]\ntimezone = 5"),
            encoding="utf-8",
        )

        applied = daemon.reload()

        after = job_ids(daemon)
    finally:
        daemon.stop()

    assert not applied
    assert "reconcile:TDP2" in before
    assert after == before


def test_failing_builder_reload_keeps_jobs(tmp_path: Path, notify: NotifyListener) -> None:
    def broken(services: DaemonServices, settings: Settings) -> list[JobSpec]:
        if len(settings.projects) > 1:
            raise KeyError("a bug in a job builder")
        return []

    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify, [*JOB_BUILDERS, broken])
    try:
        before = job_ids(daemon)
        write(config, project("TDP2") + project("NEW"))

        applied = daemon.reload()

        after = job_ids(daemon)
    finally:
        daemon.stop()

    assert not applied
    assert "reconcile:TDP2" in before
    assert after == before


def test_send_log_job_for_watched_glob(tmp_path: Path, notify: NotifyListener) -> None:
    watched = '[projects.send_log]\npath = "envios/*.csv"\ncron = "0 6 * * 1-5"\n'
    config = write(tmp_path / "acuse.toml", project("TDP2", watched))

    daemon = started(config, notify)
    try:
        ids = job_ids(daemon)
    finally:
        daemon.stop()

    assert "send-log:TDP2" in ids


def test_extra_builder_scheduled(tmp_path: Path, notify: NotifyListener) -> None:
    ran: list[str] = []

    def digest_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
        return [
            JobSpec(
                id="alerts:digest",
                func=lambda run: ran.append(run.spec.id),
                trigger=interval_trigger(settings.defaults.reconcile_interval, _utc()),
                fingerprint="1",
                timeout=settings.defaults.job_timeout,
                retry_base=settings.defaults.reconcile_interval,
            )
        ]

    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify, [*JOB_BUILDERS, digest_jobs])
    try:
        ids = job_ids(daemon)
    finally:
        daemon.stop()

    assert "alerts:digest" in ids


def test_duplicate_job_ids_rejected(tmp_path: Path, notify: NotifyListener) -> None:
    def twice(services: DaemonServices, settings: Settings) -> list[JobSpec]:
        spec = JobSpec(
            id="same",
            func=_nothing,
            trigger=interval_trigger(settings.defaults.reconcile_interval, _utc()),
            fingerprint="1",
            timeout=settings.defaults.job_timeout,
            retry_base=settings.defaults.reconcile_interval,
        )
        return [spec, spec]

    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = started(config, notify)
    try:
        assert daemon.services is not None
        assert daemon.settings is not None
        with pytest.raises(ValueError, match="same"):
            build_jobs(daemon.services, daemon.settings, [twice])
    finally:
        daemon.stop()


def test_metrics_endpoint_serves_status(tmp_path: Path, notify: NotifyListener) -> None:
    port = _free_port()
    metrics = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    config = write(tmp_path / "acuse.toml", metrics + project("TDP2"))

    daemon = started(config, notify)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        daemon.stop()

    assert 'acuse_sends{project="TDP2",state="certified"} 0.0' in body
    assert 'acuse_messages{class="quarantined",project="TDP2"} 0.0' in body
    assert "acuse_poll_duration_seconds" in body


def _nothing(run: JobRun) -> None:
    pass


def _utc() -> ZoneInfo:
    return ZoneInfo("UTC")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_unwritable_archive_blocks_ready(tmp_path: Path, notify: NotifyListener) -> None:
    (tmp_path / "archive").write_text("a file where the archive folder should be")
    config = write(tmp_path / "acuse.toml", project("TDP2"))
    daemon = Daemon(config, SystemdNotifier(notify.environment()))

    with pytest.raises(ConfigError, match="archive"):
        daemon.start()

    notify.drain()
    assert notify.count("READY") == 0
    assert daemon.scheduler is None


def test_start_warns_without_smtp(
    tmp_path: Path, notify: NotifyListener, caplog: pytest.LogCaptureFixture
) -> None:
    managers = 'managers = ["cartera@constructora.example"]'
    config = write(tmp_path / "acuse.toml", project("TDP2", managers))

    with caplog.at_level("WARNING", logger="acuse.daemon"):
        daemon = started(config, notify)
        daemon.stop()

    warning = next(r for r in caplog.records if "no [smtp] section" in r.getMessage())
    assert warning.__dict__["recipients"] == ["cartera@constructora.example"]
