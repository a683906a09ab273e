"""Numbered crash points on the durable steps of the ingest path, for crash-safety tests.

Setting ``ACUSE_CRASH_AT=STEP`` or ``ACUSE_CRASH_AT=STEP:N`` makes the process exit at once
(``os._exit``, no cleanup, as if killed) the Nth time it reaches STEP (the first time without N).
The tests use it to stop acuse between any two durable steps and prove that a restart loses and
duplicates nothing. Without the variable, a crash point costs one dictionary lookup.
"""

import os
from enum import StrEnum

CRASH_ENV = "ACUSE_CRASH_AT"
CRASH_EXIT_CODE = 86


class Step(StrEnum):
    """The durable steps of ingesting a message, in the order they happen."""

    ARCHIVE_TEMP_WRITTEN = "archive.temp_written"
    ARCHIVE_RENAMED = "archive.renamed"
    ARCHIVE_SYNCED = "archive.synced"
    LEDGER_BEFORE_COMMIT = "ledger.before_commit"
    LEDGER_COMMITTED = "ledger.committed"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    step, _separator, count = value.partition(":")
    return step.strip(), int(count) if count else 1


_target = _parse(os.environ.get(CRASH_ENV))
_reached: dict[str, int] = {}


def crash_point(step: Step) -> None:
    """Exit the process here if ``ACUSE_CRASH_AT`` names this step and occurrence."""
    if _target is None or _target[0] != step.value:
        return
    _reached[step.value] = _reached.get(step.value, 0) + 1
    if _reached[step.value] == _target[1]:
        os._exit(CRASH_EXIT_CODE)
