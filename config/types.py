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
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from config.crontab import crontab_trigger
from config.durations import parse_duration
from config.i18n import normalize_locale

EMAIL_PATTERN = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _to_duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        message = f"unknown time zone {value!r}: use an IANA name such as America/Bogota"
        raise ValueError(message) from exc
    return value


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


def _check_locale(value: str) -> str:
    return normalize_locale(value)


LocaleName = Annotated[str, BeforeValidator(_check_locale)]


def _check_email(value: str) -> str:
    if not isinstance(value, str) or not EMAIL_PATTERN.match(value.strip()):
        message = f"invalid email address {value!r}: write it as name@domain.example"
        raise ValueError(message)
    return value.strip()


EmailAddress = Annotated[str, BeforeValidator(_check_email)]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        message = f"invalid regular expression {value!r}: {exc}"
        raise ValueError(message) from exc
    return value


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


def _check_crontab(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        crontab_trigger(value, UTC)
    except ValueError as exc:
        message = (
            f"invalid cron expression {value!r}: {exc}; write five fields "
            '"minute hour day month weekday", such as "0 6 * * 1-5"'
        )
        raise ValueError(message) from exc
    return value


Crontab = Annotated[str, BeforeValidator(_check_crontab)]


def _parse_time_of_day(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        message = f"invalid time of day {value!r}: write it as HH:MM, such as 07:00"
        raise ValueError(message)
    return time(int(match.group(1)), int(match.group(2)))


TimeOfDay = Annotated[time, BeforeValidator(_parse_time_of_day)]
