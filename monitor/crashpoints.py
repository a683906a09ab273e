"""Numbered crash points on the durable steps of the ingest path, for crash-safety tests.

Setting ``ACUSE_CRASH_AT=STEP`` or ``ACUSE_CRASH_AT=STEP:N`` makes the process exit at once
(``os._exit``, no cleanup, as if killed) the Nth time it reaches STEP (the first time without N).
STEP is the step's number or its name, so ``3`` and ``archive.renamed`` are the same point. The
tests use it to stop acuse between any two durable steps and prove that a restart loses and
duplicates nothing. Without the variable, a crash point costs one dictionary lookup.

acuse never flags, moves or expunges anything on the IMAP server, so no step follows the
ledger commit there.
"""

import os
from enum import StrEnum

CRASH_ENV = "ACUSE_CRASH_AT"
CRASH_EXIT_CODE = 86


class Step(StrEnum):
    """The durable steps of ingesting and reprocessing a message, in the order they happen."""

    ARCHIVE_WRITTEN = "archive.written"  # bytes in the temp file, not yet fsynced
    ARCHIVE_TEMP_WRITTEN = "archive.temp_written"  # temp file fsynced
    ARCHIVE_RENAMED = "archive.renamed"  # temp file renamed to its final name
    ARCHIVE_SYNCED = "archive.synced"  # every changed folder fsynced
    LEDGER_RECORDED = "ledger.recorded"  # message and evidence rows written, not committed
    LEDGER_BEFORE_COMMIT = "ledger.before_commit"  # cursor moved too, not committed
    LEDGER_COMMITTED = "ledger.committed"
    REPROCESS_BEFORE_COMMIT = "reprocess.before_commit"  # new reading written, not committed
    REPROCESS_COMMITTED = "reprocess.committed"

    @property
    def number(self) -> int:
        """The step's position, from 1."""
        return list(Step).index(self) + 1


def _step_name(text: str) -> str:
    if text.isdigit() and 1 <= int(text) <= len(Step):
        return list(Step)[int(text) - 1].value
    return text


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    step, _separator, count = value.partition(":")
    return _step_name(step.strip()), int(count) if count else 1


_target = _parse(os.environ.get(CRASH_ENV))
_reached: dict[str, int] = {}


def crash_point(step: Step) -> None:
    """Exit the process here if ``ACUSE_CRASH_AT`` names this step and occurrence."""
    if _target is None or _target[0] != step.value:
        return
    _reached[step.value] = _reached.get(step.value, 0) + 1
    if _reached[step.value] == _target[1]:
        os._exit(CRASH_EXIT_CODE)
