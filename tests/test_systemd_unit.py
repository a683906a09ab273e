"""The shipped systemd unit: its sandbox, as ``systemd-analyze security`` scores it."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from acuse.daemon import ABORT_GRACE, STOP_GRACE

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "acuse.service"
DOCS = UNIT.parent.parent / "docs"
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


def test_unit_stop_timeout_covers_shutdown() -> None:
    stop_bound = STOP_GRACE + ABORT_GRACE
    timeout = int(unit_directives()["TimeoutStopSec"][0])
    text = UNIT.read_text(encoding="utf-8")

    assert timeout > stop_bound.total_seconds()
    assert f"up to {int(STOP_GRACE.total_seconds())} seconds" in text
    assert f"about {int(stop_bound.total_seconds())} seconds" in text
    for guide in ("operator-guide.md", "guia-operador.md"):
        assert f"{int(stop_bound.total_seconds())} s" in (DOCS / guide).read_text(encoding="utf-8")


def test_unit_documentation_installed_by_guides() -> None:
    targets = unit_directives()["Documentation"][0].split()

    assert targets
    for target in targets:
        installed = Path(target.removeprefix("file:"))
        assert installed.parent == Path("/opt/acuse/docs")
        assert (DOCS / installed.name).is_file()
        for guide in ("operator-guide.md", "guia-operador.md"):
            install_lines = [
                line
                for line in (DOCS / guide).read_text(encoding="utf-8").splitlines()
                if line.startswith("sudo install") and str(installed.parent) in line
            ]
            assert any(f"docs/{installed.name}" in line for line in install_lines), guide
