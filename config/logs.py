"""Logging setup: JSON lines when stdout is not a terminal (journald keeps them), text when it is.

Log calls pass their identifiers as ``extra`` fields (``project``, ``mailbox``, ``uid``, counts),
so every line can be searched by them. Every secret that acuse reads is registered here and
replaced by ``***`` in each formatted line, whichever logger wrote it.
"""

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_REDACTED = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Make every later log line replace ``value`` with ``***``."""
    if len(value) < 4:
        # Redacting a very short secret would mangle ordinary words; such secrets are too weak
        # to protect anyway.
        return
    with _secrets_lock:
        _secrets.add(value)


def forget_secret(value: str) -> None:
    """Stop redacting ``value``, such as an access token that has expired."""
    with _secrets_lock:
        _secrets.discard(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).astimezone().strftime("%H:%M:%S")
        fields = " ".join(f"{key}={value}" for key, value in _extra_fields(record).items())
        line = f"{time} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact(line)


def configure_logging(
    level: str = "INFO", stream: TextIO | None = None, json_lines: bool | None = None
) -> None:
    """Send acuse's logs to ``stream`` (stderr by default) at ``level``.

    ``json_lines`` defaults to true when the stream is not a terminal.
    """
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()

    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())

    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # Libraries log every protocol line at DEBUG; keep them one level quieter than acuse.
    # pypdf warns about every flaw of a damaged PDF; acuse reports the outcome (quarantine).
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    for noisy in ("imapclient", "mailparser", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level.upper()), logging.INFO))
