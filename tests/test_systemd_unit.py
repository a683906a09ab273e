"""The shipped systemd unit: its sandbox, as ``systemd-analyze security`` scores it."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "acuse.service"
MAX_EXPOSURE = 2.0
_EXPOSURE = re.compile(r"Overall exposure level for acuse\.service: (\d+\.\d+)")


def systemd_analyze() -> str:
    program = shutil.which("systemd-analyze")
    if program is not None:
        return program
    message = "systemd-analyze is not installed (Debian package systemd)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the unit checks", pytrace=False)
    pytest.skip(message)


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def test_unit_exposure_at_most_two() -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )

    match = _EXPOSURE.search(result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_unit_verifies() -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )

    # verify reports a missing ExecStart binary on a machine where acuse is not installed
    # under /opt; every other complaint is a mistake in the unit.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "/opt/acuse/venv/bin/acuse" not in line
    ]
    assert problems == []


def test_unit_is_notify_with_watchdog() -> None:
    directives = unit_directives()

    assert directives["Type"] == ["notify"]
    assert directives["WatchdogSec"] == ["60"]
    assert directives["Restart"] == ["on-failure"]
    assert directives["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert directives["DynamicUser"] == ["yes"]
    assert directives["StateDirectory"] == ["acuse"]
    assert directives["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
