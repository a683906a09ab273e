"""The reader worker process: reads messages sent by ``monitor.reader_pool`` under ceilings.

Run as ``python -m monitor.read_worker LIMITS_JSON``. It enforces two ceilings of
``[limits]`` on itself:

- CPU time: before each message the worker sets its soft ``RLIMIT_CPU`` to the CPU time it
  has used plus ``cpu_seconds``. The kernel then sends SIGXCPU, whose handler stops the read.
  The worker replies with the limit named and goes on with the next message.
- Memory: the worker sets ``RLIMIT_AS`` to its own size after start-up plus
  ``memory_bytes``. An allocation past it raises MemoryError; the worker replies with the
  limit named and exits, and the pool starts a fresh one.

The parent and a worker exchange frames (``monitor.worker_frames``) over the worker's
standard input and output. The worker moves its standard output to standard error first, so
no library print can corrupt a frame. A worker exits when its standard input closes, so it
never outlives its parent.
"""

import logging
import math
import os
import resource
import signal
import sys
from typing import Any

from config.provider_settings import ProviderProfile, ReadingLimits
from monitor.limits import Limit
from monitor.reading import read_message
from monitor.worker_frames import EOFFrame, read_frame, write_frame

log = logging.getLogger(__name__)

_QUIET_LIBRARIES = ("pyhanko", "pyhanko_certvalidator", "dkim", "pypdf")


class CpuTimeExceeded(BaseException):
    """SIGXCPU arrived: the message used its CPU time. A BaseException, so that no
    ``except Exception`` in the reader swallows it."""


def _serve(limits: ReadingLimits) -> None:
    """Reply to read requests until standard input closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _quiet_libraries()
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    _limit_memory(limits.memory_bytes)

    profiles: dict[str, ProviderProfile] = {}
    while True:
        try:
            profile_key, profile, raw = read_frame(requests)
        except EOFFrame:
            return
        except MemoryError:
            detail = f"the message does not fit in {limits.memory_bytes} bytes of memory"
            write_frame(replies, ("limit", (Limit.MEMORY_BYTES.value, detail)))
            return
        if profile is not None:
            profiles[profile_key] = profile
        reply, exit_after = _read_one(raw, profiles[profile_key], limits)
        write_frame(replies, reply)
        if exit_after:
            return


def _read_one(
    raw: bytes, profile: ProviderProfile, limits: ReadingLimits
) -> tuple[tuple[str, Any], bool]:
    """Return the reply to one request, and whether the worker must exit after sending it."""
    _allow_cpu_seconds(limits.cpu_seconds)
    try:
        return ("ok", read_message(raw, profile, limits)), False
    except CpuTimeExceeded:
        detail = f"the reader used more than {limits.cpu_seconds} s of CPU time"
        return ("limit", (Limit.CPU_SECONDS.value, detail)), False
    except MemoryError:
        detail = f"the reader needed more than {limits.memory_bytes} bytes of memory"
        return ("limit", (Limit.MEMORY_BYTES.value, detail)), True
    except Exception as exc:  # read_message handles bad input; this is a reader bug
        return ("error", f"{type(exc).__name__}: {exc}"), False
    finally:
        _allow_cpu_seconds(None)


def _on_cpu_limit(_signum: int, _frame: object) -> None:
    raise CpuTimeExceeded


def _allow_cpu_seconds(seconds: int | None) -> None:
    """Let the process use ``seconds`` more of CPU time before SIGXCPU, or lift the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _limit_memory(budget: int) -> None:
    """Cap the address space at the worker's current size plus ``budget`` bytes."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        log.warning("cannot measure the reader's size, so no memory limit is set")
        return
    current = pages * os.sysconf("SC_PAGE_SIZE")
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = current + budget
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))


def _quiet_libraries() -> None:
    # The reasons that these libraries log at WARNING or ERROR are returned in the readings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL)


if __name__ == "__main__":
    _serve(ReadingLimits.model_validate_json(sys.argv[1]))
