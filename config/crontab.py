"""Crontab expressions with the weekday numbers of cron(5), for APScheduler 3 triggers.

APScheduler 3 reads weekday numbers with 0 as Monday, while crontab uses 0 (or 7) as Sunday, so
``1-5`` would run Tuesday to Saturday. The weekday field is rewritten with day names first,
which both agree on.
"""

import re
from datetime import tzinfo
from typing import TYPE_CHECKING

from config.i18n import _

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"(\d+)-(\d+)")


def crontab_trigger(expression: str, timezone: tzinfo) -> "CronTrigger":
    """Build a trigger for ``minute hour day month weekday``, in wall-clock time of ``timezone``.

    Raises ValueError for an expression that is not five valid fields.
    """
    # Every command imports the settings, which call this function only for a crontab key that
    # is set, so APScheduler is imported here rather than at the top of the module.
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

    fields = expression.split()
    if len(fields) != 5:
        message = _("a crontab expression has 5 fields, not {count}").format(count=len(fields))
        raise ValueError(message)
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone=timezone,
    )


def crontab_weekdays(field: str) -> str:
    """Rewrite a crontab weekday field with day names: ``1-5`` becomes ``mon,tue,wed,thu,fri``."""
    if field in {"*", "?"}:
        return field
    names: list[str] = []
    for part in field.split(","):
        days = _cron_days(part)
        if days is None:
            names.append(part)
        else:
            names.extend(_DAY_NAMES[day] for day in days)
    return ",".join(dict.fromkeys(names))


def _cron_days(part: str) -> range | None:
    """The crontab day numbers of one list item, or None for an item written with names."""
    base, _separator, step_text = part.partition("/")
    step = int(step_text) if step_text.isdigit() else 1
    if base == "*":
        first, last = 0, 6
    elif match := _RANGE.fullmatch(base):
        first, last = int(match.group(1)), int(match.group(2))
    elif base.isdigit():
        first = last = int(base)
    else:
        return None
    if last > 7 or first > last or step < 1:
        message = _("invalid weekday {part!r}: use 0 to 7 (0 and 7 are Sunday) or names").format(
            part=part
        )
        raise ValueError(message)
    return range(first, last + 1, step)
