"""Value types shared by the settings sections: durations, zones, addresses, patterns, times.

Each type validates a raw TOML value and says in its error what is wrong and how to write it.
"""

import ipaddress
import re
from datetime import UTC, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from config.crontab import crontab_trigger
from config.durations import duration_from_seconds, format_duration, parse_duration
from config.i18n import _, normalize_locale
from config.text_safety import UNSAFE_RANGES, has_unsafe_characters

# No part of an address may contain a control or bidirectional character, because either one
# makes the address print differently from what it is.
_ADDRESS_PART = rf"[^@\s<>{UNSAFE_RANGES}]+"
EMAIL_PATTERN = re.compile(rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$")


def require_text(value: Any) -> str:
    """Return ``value`` when it is a string; raise ValueError naming it otherwise.

    TOML values arrive typed, so a number, boolean, list or table where a text belongs is an
    error rather than something to convert.
    """
    if not isinstance(value, str):
        message = _("invalid value {value!r}: {fix}").format(
            value=value, fix=_("write a text in quotes")
        )
        raise ValueError(message)
    return value


def _reject_boolean(value: Any) -> Any:
    # pydantic reads true as 1 for a number, which hides a value written in the wrong key.
    if isinstance(value, bool):
        message = _("invalid value {value!r}: {fix}").format(value=value, fix=_("write a number"))
        raise ValueError(message)
    return value


Integer = Annotated[int, BeforeValidator(_reject_boolean)]
"""A whole number; booleans are rejected, and numeric text from the environment is read."""

Number = Annotated[float, BeforeValidator(_reject_boolean), AllowInfNan(False)]
"""A finite number; booleans, infinity and NaN are rejected."""


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return duration_from_seconds(value, str(value))
    message = _(
        "invalid duration {text!r}: write a number and a unit s, m, h, d or w, such as 30m or 6h"
    ).format(text=value)
    raise ValueError(message)


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
"""A duration as text (``90s``, ``6h``, ``1h30m``) or a number of seconds, at most 3650d.

A negative number passes, so every setting adds its own bounds with ``duration_range``.
"""


def duration_range(minimum: str, maximum: str) -> AfterValidator:
    """Build the validator that keeps a Duration setting between ``minimum`` and ``maximum``."""
    low = parse_duration(minimum)
    high = parse_duration(maximum)

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            message = _("invalid duration {value}: write one from {minimum} to {maximum}").format(
                value=format_duration(value), minimum=minimum, maximum=maximum
            )
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _check_timezone(value: Any) -> str:
    text = require_text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name too long for a file name in the zone database.
        message = f"unknown time zone {value!r}: use an IANA name such as America/Bogota"
        raise ValueError(message) from exc
    return text


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


def _check_locale(value: Any) -> str:
    return normalize_locale(require_text(value))


LocaleName = Annotated[str, BeforeValidator(_check_locale)]


def _check_email(value: str) -> str:
    if isinstance(value, str) and has_unsafe_characters(value.strip()):
        message = (
            f"invalid email address {value!r}: it contains a control or bidirectional "
            "character (shown escaped); type the address again as name@domain.example"
        )
        raise ValueError(message)
    if not isinstance(value, str) or not EMAIL_PATTERN.match(value.strip()):
        message = f"invalid email address {value!r}: write it as name@domain.example"
        raise ValueError(message)
    return value.strip()


EmailAddress = Annotated[str, BeforeValidator(_check_email)]


def _check_regex(value: Any) -> str:
    text = require_text(value)
    try:
        re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        message = f"invalid regular expression {value!r}: {exc}"
        raise ValueError(message) from exc
    return text


Regex = Annotated[str, BeforeValidator(_check_regex)]


class Section(BaseModel):
    """Base of every settings section: an unknown key is an error, and values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Security(StrEnum):
    """How a mail connection is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_crontab(value: Any) -> str | None:
    if value is None:
        return None
    text = require_text(value)
    try:
        crontab_trigger(text, UTC)
    except ValueError as exc:
        message = (
            f"invalid cron expression {value!r}: {exc}; write five fields "
            '"minute hour day month weekday", such as "0 6 * * 1-5"'
        )
        raise ValueError(message) from exc
    return text


Crontab = Annotated[str, BeforeValidator(_check_crontab)]


def _parse_time_of_day(value: Any) -> time:
    # TOML has a local-time type (digest_at = 07:00:00) that tomllib returns as a time.
    if isinstance(value, time):
        return value
    require_text(value)
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        message = f"invalid time of day {value!r}: write it as HH:MM, such as 07:00"
        raise ValueError(message)
    return time(int(match.group(1)), int(match.group(2)))


TimeOfDay = Annotated[time, BeforeValidator(_parse_time_of_day)]
