"""Durations written the way operators write them: ``90s``, ``30m``, ``6h``, ``1d``, ``1h30m``."""

import math
import re
from datetime import timedelta

from config.i18n import _

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")

# No setting needs more than ten years, and the ceiling keeps timedelta far from its overflow.
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``6h`` or ``1h30m``; raise ValueError on anything else.

    Durations longer than MAX_DURATION are rejected with ValueError as well.
    """
    lowered = text.strip().lower()
    if not _WHOLE.match(lowered):
        message = _(
            "invalid duration {text!r}: write a number and a unit s, m, h, d or w, "
            "such as 30m or 6h"
        ).format(text=text)
        raise ValueError(message)

    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(lowered))
    return duration_from_seconds(seconds, repr(text))


def duration_from_seconds(seconds: float, as_written: str) -> timedelta:
    """Convert ``seconds`` to a timedelta; raise ValueError past MAX_DURATION either way or NaN.

    ``as_written`` is the value as the user wrote it, for the message. A negative duration passes,
    so that the setting's own range can name the accepted values.
    """
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        message = _(
            "invalid duration {value}: write one of at most {maximum}, such as 30m or 6h"
        ).format(value=as_written, maximum=format_duration(MAX_DURATION))
        raise ValueError(message)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Format a duration in the same notation that parse_duration reads, with ``-`` if negative."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + format_duration(-value)

    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
