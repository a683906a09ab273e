"""Running the real ``acuse`` command line in a child process, as a user or systemd would."""

import subprocess
import sys
from pathlib import Path

COMMAND = [sys.executable, "-m", "acuse"]


def run_acuse(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``acuse --config CONFIG ARGS`` and return its exit code and output."""
    return subprocess.run(
        [*COMMAND, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def spawn_acuse(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``acuse --config CONFIG ARGS`` without waiting for it."""
    return subprocess.Popen(
        [*COMMAND, "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
