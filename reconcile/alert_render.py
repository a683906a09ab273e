"""Rendering alert emails: subject, plain text, HTML and the CSV of the same rows.

The bodies are Jinja2 templates under ``reconcile/templates``. An operator overrides any of
them by putting a file of the same name in the folder that ``[alerts] templates`` names. The
templates run with Jinja2's i18n extension bound to the project's catalog, so ``_()`` and
``{% trans %}`` in a template use the project's language. The texts that code supplies are
translated with the same catalog before they reach the template.
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime as email_date
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)

from config.alert_settings import AlertKind
from config.errors import AcuseError
from config.i18n import _, translation
from config.settings import Settings
from config.text_safety import spreadsheet_cell
from reconcile.alert_models import AlertEvent
from reconcile.alert_routing import AlertScope
from reconcile.alert_rows import Column, RowFormatter
from reconcile.alert_texts import (
    ADVICE,
    DIGEST_SUBJECT,
    INTRODUCTIONS,
    REMINDER_INTRODUCTION,
    REMINDER_SUBJECT,
    RESOLVED_INTRODUCTION,
    TEST_SUBJECT,
    TITLES,
    resolved_subject_pattern,
    subject_patterns,
)

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
_EVENT_ORDER = (AlertEvent.RAISED, AlertEvent.REMINDER, AlertEvent.RESOLVED)


class TemplateProblem(AcuseError):
    """An alert template is missing or invalid; ``template`` names the file."""

    def __init__(self, message: str, template: str) -> None:
        super().__init__(message)
        self.template = template


@dataclass(frozen=True)
class ItemData:
    """One alert as an email lists it."""

    kind: AlertKind
    event: AlertEvent
    details: dict[str, Any]


@dataclass(frozen=True)
class DaySummary:
    """Counts of the sends of a digest's period by their state at the digest moment."""

    sends: int = 0
    certified: int = 0
    pending: int = 0
    missing: int = 0
    failed: int = 0
    rejected: int = 0
    other: int = 0
    open_alerts: int = 0


@dataclass(frozen=True)
class RenderedEmail:
    """An email ready to be wrapped in MIME: the subject, both bodies and the CSV attachment."""

    subject: str
    text: str
    html: str
    attachment_name: str | None = None
    attachment: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def templates_folder(settings: Settings) -> Path | None:
    """Return the operator's template folder, resolved against the configuration folder."""
    folder = settings.alerts.templates
    return settings.resolve_path(folder) if folder is not None else None


@cache
def _environment(folder: Path | None, locale: str) -> Environment:
    loaders = [FileSystemLoader(str(folder))] if folder is not None else []
    loaders.append(FileSystemLoader(str(BUILTIN_TEMPLATES)))
    environment = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.install_gettext_translations(translation(locale), newstyle=True)  # type: ignore[attr-defined]
    return environment


def _render(settings: Settings, scope: AlertScope, name: str, context: dict[str, Any]) -> str:
    folder = templates_folder(settings)
    if folder is not None and not folder.is_dir():
        message = _(
            "The alert template folder {path} does not exist: create it or fix [alerts] templates."
        ).format(path=folder)
        raise TemplateProblem(message, template=str(folder))
    try:
        return _environment(folder, scope.locale).get_template(name).render(context)
    except TemplateNotFound as exc:
        message = _("Alert template {name} not found in {path}.").format(
            name=name, path=BUILTIN_TEMPLATES
        )
        raise TemplateProblem(message, template=name) from exc
    except TemplateError as exc:
        message = _("Alert template {name} cannot be rendered: {error}. Fix the template.").format(
            name=name, error=exc
        )
        raise TemplateProblem(message, template=name) from exc


@dataclass(frozen=True)
class _Section:
    kind: AlertKind
    event: AlertEvent
    title: str
    intro: str
    columns: list[Column]
    rows: list[dict[str, str]]
    advice: list[str]


def _section(
    formatter: RowFormatter, kind: AlertKind, event: AlertEvent, items: Sequence[ItemData]
) -> _Section:
    gettext = formatter.gettext
    columns = formatter.columns(kind)
    if event is AlertEvent.RESOLVED:
        columns = [*columns, Column("resolution", gettext("Resolution"))]
        intro = gettext(RESOLVED_INTRODUCTION)
        advice: list[str] = []
    else:
        intro = gettext(INTRODUCTIONS[kind])
        if event is AlertEvent.REMINDER:
            intro = f"{gettext(REMINDER_INTRODUCTION)} {intro}"
        advice = [gettext(text) for text in ADVICE[kind]]
    return _Section(
        kind=kind,
        event=event,
        title=gettext(TITLES[kind]),
        intro=intro,
        columns=columns,
        rows=[formatter.row(kind, item.details) for item in items],
        advice=advice,
    )


def alert_subject(scope: AlertScope, kind: AlertKind, event: AlertEvent, count: int) -> str:
    """Build the subject of an email about ``count`` alerts of ``kind``."""
    catalog = translation(scope.locale)
    formatted = RowFormatter(scope, catalog).count(count)
    if event is AlertEvent.RESOLVED:
        pattern = resolved_subject_pattern(catalog.ngettext, count)
        return pattern.format(project=scope.name, count=formatted)
    pattern = subject_patterns(catalog.ngettext, count)[kind]
    subject = pattern.format(project=scope.name, count=formatted)
    if event is AlertEvent.REMINDER:
        subject = catalog.gettext(REMINDER_SUBJECT).format(subject=subject)
    return subject


def render_alert(
    settings: Settings,
    scope: AlertScope,
    items: Sequence[ItemData],
    now: datetime,
) -> RenderedEmail:
    """Render the email about ``items``, which share one kind and one event."""
    kind, event = items[0].kind, items[0].event
    formatter = RowFormatter(scope, translation(scope.locale))
    section = _section(formatter, kind, event, items)
    subject = alert_subject(scope, kind, event, len(items))
    context = {
        "scope": scope,
        "subject": subject,
        "section": section,
        "generated_at": formatter.time(now),
    }
    stamp = f"{now.astimezone(scope.timezone):%Y%m%d-%H%M}"
    name = f"acuse-{scope.code or 'acuse'}-{kind.value}-{stamp}.csv"
    return RenderedEmail(
        subject=subject,
        text=_render(settings, scope, "alert.txt", context),
        html=_render(settings, scope, "alert.html", context),
        attachment_name=name,
        attachment=_csv_bytes(scope, [section]),
        headers={"X-Acuse-Kind": kind.value, "X-Acuse-Event": event.value},
    )


def render_digest(
    settings: Settings,
    scope: AlertScope,
    items: Sequence[ItemData],
    summary: DaySummary,
    period: tuple[datetime, datetime],
    *,
    now: datetime,
) -> RenderedEmail:
    """Render the daily digest: the summary of the period, then its alerts by event and kind.

    ``now`` is the moment of rendering, which the footer shows as the time it was sent.
    """
    formatter = RowFormatter(scope, translation(scope.locale))
    gettext = formatter.gettext
    sections = []
    for event in _EVENT_ORDER:
        for kind in AlertKind:
            chosen = [item for item in items if item.kind is kind and item.event is event]
            if chosen:
                sections.append(_section(formatter, kind, event, chosen))
    subject = gettext(DIGEST_SUBJECT).format(project=scope.name, date=formatter.date(period[1]))
    figures = [
        (gettext("Sends"), summary.sends),
        (gettext("Certified"), summary.certified),
        (gettext("Pending"), summary.pending),
        (gettext("Not certified"), summary.missing),
        (gettext("Delivery failed"), summary.failed),
        (gettext("Rejected by Lleida.net"), summary.rejected),
        (gettext("Other states"), summary.other),
        (gettext("Open alerts"), summary.open_alerts),
    ]
    context = {
        "scope": scope,
        "subject": subject,
        "period_start": formatter.time(period[0]),
        "period_end": formatter.time(period[1]),
        "figures": [(label, formatter.count(value)) for label, value in figures],
        "sections": sections,
        "generated_at": formatter.time(now),
    }
    name = f"acuse-{scope.code}-digest-{period[1].astimezone(scope.timezone):%Y%m%d}.csv"
    return RenderedEmail(
        subject=subject,
        text=_render(settings, scope, "digest.txt", context),
        html=_render(settings, scope, "digest.html", context),
        attachment_name=name if sections else None,
        attachment=_csv_bytes(scope, sections) if sections else None,
        headers={"X-Acuse-Kind": "digest"},
    )


def render_test(
    settings: Settings, scope: AlertScope, recipients: Sequence[str], now: datetime
) -> RenderedEmail:
    """Render the test email that ``acuse alerts test`` sends."""
    formatter = RowFormatter(scope, translation(scope.locale))
    subject = formatter.gettext(TEST_SUBJECT).format(project=scope.name)
    context = {
        "scope": scope,
        "subject": subject,
        "recipients": list(recipients),
        "generated_at": formatter.time(now),
    }
    return RenderedEmail(
        subject=subject,
        text=_render(settings, scope, "test.txt", context),
        html=_render(settings, scope, "test.html", context),
        headers={"X-Acuse-Kind": "test"},
    )


def _csv_bytes(scope: AlertScope, sections: Sequence[_Section]) -> bytes:
    """Write the rows of every section as one CSV for a spreadsheet in the reader's locale.

    Spanish spreadsheets use the comma as decimal mark, so they expect ``;`` between cells.
    The byte order mark makes them read the file as UTF-8. Cells come from mail and send logs,
    so each one is defused against formulas and control characters.
    """
    several = len(sections) > 1
    columns: list[Column] = []
    for section in sections:
        columns += [column for column in section.columns if column not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if scope.locale.startswith("es") else ",")
    alert_heading = translation(scope.locale).gettext("Alert")
    writer.writerow(([alert_heading] if several else []) + [column.heading for column in columns])
    for section in sections:
        for row in section.rows:
            cells = [spreadsheet_cell(row.get(column.key, "")) for column in columns]
            writer.writerow(([section.title] if several else []) + cells)
    return buffer.getvalue().encode("utf-8-sig")


class _HeaderPolicy(EmailPolicy):
    """The SMTP policy, refolding the headers that Python 3.11 folds with an empty first line.

    Python's folder moves the whole value to a continuation line when it cannot break it,
    which happens for a subject that starts with ``[acuse]`` or a long Message-ID, and some
    mail clients then show an empty header. Such a header is refolded at its spaces, and a
    word longer than a line stays whole: RFC 5322 allows lines of up to 998 characters.
    """

    def fold(self, name: str, value: str) -> str:
        folded: str = super().fold(name, value)
        if not folded.startswith(f"{name}:{self.linesep} "):
            return folded
        return _refold(folded, self.linesep, self.max_line_length or 78)

    def fold_binary(self, name: str, value: str) -> bytes:
        folded: bytes = super().fold_binary(name, value)
        if not folded.startswith(f"{name}:{self.linesep} ".encode("ascii")):
            return folded
        text = folded.decode("ascii", "surrogateescape")
        refolded = _refold(text, self.linesep, self.max_line_length or 78)
        return refolded.encode("ascii", "surrogateescape")


def _refold(folded: str, linesep: str, limit: int) -> str:
    """Unfold a folded header, then fold it again at spaces into lines of ``limit`` at most."""
    words = folded.replace(linesep + " ", " ").removesuffix(linesep).split(" ")
    lines = [words[0]]
    for word in words[1:]:
        # An empty word is a run of spaces, kept on its line so that no line is blank.
        fits = len(lines[-1]) + 1 + len(word) <= limit
        if not word or lines[-1] == words[0] or fits:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return linesep.join(lines) + linesep


SMTP_POLICY = _HeaderPolicy(linesep="\r\n")


def build_message(
    rendered: RenderedEmail,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    date: datetime,
) -> bytes:
    """Wrap a rendered email in MIME: text and HTML alternatives, then the CSV attachment."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = rendered.subject
    message["Date"] = email_date(date)
    message["Message-ID"] = message_id
    # RFC 3834: auto-responders must not reply to a message marked auto-generated.
    message["Auto-Submitted"] = "auto-generated"
    for name, value in rendered.headers.items():
        message[name] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if rendered.attachment is not None and rendered.attachment_name is not None:
        message.add_attachment(
            rendered.attachment, maintype="text", subtype="csv", filename=rendered.attachment_name
        )
    return message.as_bytes()
