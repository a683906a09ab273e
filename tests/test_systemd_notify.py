"""The sd_notify protocol against a datagram socket that the test binds."""

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from acuse.systemd_notify import SystemdNotifier, notify_address, watchdog_interval
from tests.notify_socket import NotifyListener


def test_ready_reaches_path_socket(tmp_path: Path) -> None:
    with NotifyListener(tmp_path) as listener:
        notifier = SystemdNotifier(listener.environment())

        sent = notifier.ready("Started with 3 jobs.")

        message = listener.wait_for_field("READY", timeout=5)
    assert sent
    assert message["STATUS"] == "Started with 3 jobs."


def test_abstract_socket_name(tmp_path: Path) -> None:
    with NotifyListener(tmp_path, abstract=True) as listener:
        notifier = SystemdNotifier(listener.environment())

        notifier.watchdog()

        message = listener.wait_for_field("WATCHDOG", timeout=5)
    assert listener.address.startswith("@")
    assert message == {"WATCHDOG": "1"}


def test_status_joins_lines(tmp_path: Path) -> None:
    with NotifyListener(tmp_path) as listener:
        notifier = SystemdNotifier(listener.environment())

        notifier.status("first line\nsecond line")

        message = listener.wait_for(lambda fields: "STATUS" in fields, timeout=5)
    assert message["STATUS"] == "first line second line"


def test_stopping_and_reloading(tmp_path: Path) -> None:
    with NotifyListener(tmp_path) as listener:
        notifier = SystemdNotifier(listener.environment())

        notifier.reloading()
        notifier.stopping()

        reloading = listener.wait_for_field("RELOADING", timeout=5)
        stopping = listener.wait_for_field("STOPPING", timeout=5)
    assert reloading["MONOTONIC_USEC"].isdigit()
    assert stopping == {"STOPPING": "1"}


def test_without_socket_does_nothing() -> None:
    notifier = SystemdNotifier({})

    sent = notifier.ready()

    assert not notifier.enabled
    assert not sent


def test_send_failure_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})

    with caplog.at_level(logging.ERROR, logger="acuse.systemd_notify"):
        sent = notifier.ready()

    assert not sent
    assert "systemd notification failed" in caplog.text


def test_abstract_address_has_nul_prefix() -> None:
    assert notify_address("@acuse/notify") == b"\0acuse/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"


def test_watchdog_interval_read() -> None:
    interval = watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})

    assert interval == timedelta(seconds=30)


def test_watchdog_for_other_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


def test_watchdog_unset() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
