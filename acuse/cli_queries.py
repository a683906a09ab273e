"""Query commands: ``sends``, ``unmatched``, ``orphans``, ``show`` and ``status``."""

import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from acuse.context import AppContext
from acuse.labels import format_count, format_time, send_reason, state_label
from acuse.output import Column, OutputFormat, write_fields, write_rows
from config.database import utcnow
from config.i18n import _
from config.settings import ProjectView
from reconcile.models import SendState
from reconcile.queries import (
    OrphanView,
    SendView,
    find_send_project,
    get_evidence,
    get_send,
    list_orphans,
    list_sends,
    project_status,
)
from reconcile.states import PROBLEM_STATES

EXIT_PROBLEMS = 1


def _send_columns() -> list[Column]:
    return [
        Column("project", _("Project")),
        Column("send_id", _("Send")),
        Column("negocio", _("Negocio")),
        Column("inmueble", _("Unit")),
        Column("client", _("Client")),
        Column("recipient", _("Recipient")),
        Column("subject", _("Subject")),
        Column("sent_at", _("Sent")),
        Column("state", _("State")),
        Column("reason", _("Reason")),
        Column("evidence_id", _("Evidence")),
        Column("certificate_id", _("Certificate")),
        Column("delivered_at", _("Delivered")),
    ]


def _iso(value: datetime | None, project: ProjectView) -> str | None:
    return value.astimezone(project.timezone).isoformat() if value is not None else None


def _send_record(view: SendView, project: ProjectView) -> dict[str, Any]:
    """The stable, English record that JSON and CSV carry."""
    return {
        "project": view.project,
        "send_id": view.send_id,
        "notification_type": view.notification_type,
        "negocio": view.negocio,
        "inmueble": view.inmueble,
        "client": view.client,
        "recipient": view.recipient,
        "subject": view.subject,
        "sent_at": _iso(view.sent_at, project),
        "lleida_copied": view.lleida_copied,
        "state": view.state.value,
        "reason": send_reason(view, project.timezone, translate=str),
        "deadline": _iso(view.deadline, project),
        "match_rule": view.match_rule,
        "evidence_id": view.evidence_id,
        "certificate_id": view.certificate_id,
        "delivered_at": _iso(view.delivered_at, project),
    }


def _send_row(view: SendView, project: ProjectView) -> dict[str, Any]:
    """The same send for people: translated state and reason, local dates."""
    return {
        **_send_record(view, project),
        "sent_at": format_time(view.sent_at, project.timezone),
        "delivered_at": format_time(view.delivered_at, project.timezone),
        "state": state_label(view.state),
        "reason": send_reason(view, project.timezone),
    }


def _state_choice() -> click.Choice:
    return click.Choice([state.value for state in SendState])


def _format_option() -> Any:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice([f.value for f in OutputFormat]),
        default=OutputFormat.TABLE.value,
        show_default=True,
        help=_("Output: a table for people, or JSON or CSV with English keys for scripts."),
    )


def _as_of_option() -> Any:
    return click.option(
        "--as-of",
        "as_of",
        metavar="ISO8601",
        help=_("Judge deadlines at this time instead of now, e.g. 2026-11-03T18:00-05:00."),
    )


def _fail_option() -> Any:
    return click.option(
        "--fail-on-problems",
        is_flag=True,
        help=_("Exit with status 1 when any listed send has a problem."),
    )


def _project_option() -> Any:
    return click.option("--project", "project_code", metavar="CODE", help=_("Only this project (its code)."))


def _print_sends(
    app: AppContext,
    project_code: str | None,
    as_of_text: str | None,
    output_format: str,
    fail_on_problems: bool,
    states: frozenset[SendState] | None,
    exclude: frozenset[SendState] | None,
) -> None:
    as_of = app.parse_as_of(as_of_text) or utcnow()
    projects = app.projects(project_code)
    found_problem = False

    def views() -> Iterator[tuple[SendView, ProjectView]]:
        nonlocal found_problem
        with app.database.session() as session:
            for project in projects:
                for view in list_sends(session, project, as_of, states=states, exclude_states=exclude):
                    found_problem = found_problem or view.state in PROBLEM_STATES
                    yield view, project

    chosen = OutputFormat(output_format)
    if chosen is OutputFormat.TABLE:
        pairs = list(views())
        records = [_send_record(v, p) for v, p in pairs]
        human = [_send_row(v, p) for v, p in pairs]
        write_rows(records, _send_columns(), chosen, human_rows=human)
    else:
        write_rows((_send_record(v, p) for v, p in views()), _send_columns(), chosen)

    if fail_on_problems and found_problem:
        sys.exit(EXIT_PROBLEMS)


def _orphan_record(view: OrphanView, project: ProjectView) -> dict[str, Any]:
    return {
        "project": view.project,
        "evidence_id": view.evidence_id,
        "kind": view.kind.value,
        "certificate_id": view.certificate_id,
        "recipient": view.recipient,
        "subject": view.subject,
        "time": _iso(view.time, project),
        "deadline": _iso(view.deadline, project),
        "message_id": view.message_pk,
    }


def _orphan_columns() -> list[Column]:
    return [
        Column("project", _("Project")),
        Column("evidence_id", _("Evidence")),
        Column("kind", _("Kind")),
        Column("certificate_id", _("Certificate")),
        Column("recipient", _("Recipient")),
        Column("subject", _("Subject")),
        Column("time", _("Sent")),
        Column("message_id", _("Message")),
    ]


def _kind_label(kind: str) -> str:
    labels = {"delivered": _("delivered"), "delivery_failed": _("delivery failed"), "rejected": _("rejected")}
    return labels.get(kind, kind)


def register(cli: click.Group) -> None:
    """Add the query commands to ``cli``."""

    @cli.command("sends", help=_("List sends with their certification state."))
    @_project_option()
    @click.option("--state", "state_values", multiple=True, type=_state_choice(), help=_("Only sends in this state; repeat for several."))
    @_as_of_option()
    @_format_option()
    @_fail_option()
    @click.pass_obj
    def sends_command(
        app: AppContext,
        project_code: str | None,
        state_values: tuple[str, ...],
        as_of: str | None,
        output_format: str,
        fail_on_problems: bool,
    ) -> None:
        states = frozenset(SendState(value) for value in state_values) or None
        _print_sends(app, project_code, as_of, output_format, fail_on_problems, states, None)

    @cli.command("unmatched", help=_("List sends that are not certified (every state but certified)."))
    @_project_option()
    @click.option("--state", "state_values", multiple=True, type=_state_choice(), help=_("Only sends in this state; repeat for several."))
    @_as_of_option()
    @_format_option()
    @_fail_option()
    @click.pass_obj
    def unmatched_command(
        app: AppContext,
        project_code: str | None,
        state_values: tuple[str, ...],
        as_of: str | None,
        output_format: str,
        fail_on_problems: bool,
    ) -> None:
        states = frozenset(SendState(value) for value in state_values) or None
        exclude = frozenset({SendState.CERTIFIED})
        _print_sends(app, project_code, as_of, output_format, fail_on_problems, states, exclude)

    @cli.command("orphans", help=_("List evidence that matched no send after its deadline."))
    @_project_option()
    @_as_of_option()
    @_format_option()
    @_fail_option()
    @click.pass_obj
    def orphans_command(
        app: AppContext, project_code: str | None, as_of: str | None, output_format: str, fail_on_problems: bool
    ) -> None:
        when = app.parse_as_of(as_of) or utcnow()
        records: list[dict[str, Any]] = []
        human: list[dict[str, Any]] = []
        with app.database.session() as session:
            for project in app.projects(project_code):
                for view in list_orphans(session, project, when):
                    record = _orphan_record(view, project)
                    records.append(record)
                    human.append(
                        {**record, "kind": _kind_label(view.kind.value), "time": format_time(view.time, project.timezone)}
                    )
        write_rows(records, _orphan_columns(), OutputFormat(output_format), human_rows=human)
        if fail_on_problems and records:
            sys.exit(EXIT_PROBLEMS)

    @cli.command("show", help=_("Show one send with its evidence and how it was matched."))
    @click.argument("send_id", type=int)
    @_as_of_option()
    @click.option(
        "--format",
        "output_format",
        type=click.Choice([OutputFormat.TABLE.value, OutputFormat.JSON.value]),
        default=OutputFormat.TABLE.value,
        show_default=True,
        help=_("Output: fields for people, or JSON for scripts."),
    )
    @click.pass_obj
    def show_command(app: AppContext, send_id: int, as_of: str | None, output_format: str) -> None:
        when = app.parse_as_of(as_of) or utcnow()
        with app.database.session() as session:
            code = find_send_project(session, send_id)
            if code is None:
                raise click.UsageError(_("No send with id {send_id}: list them with 'acuse sends'.").format(send_id=send_id))
            project = app.projects(code)[0]
            view = get_send(session, project, send_id, when)
            assert view is not None
            evidence = get_evidence(session, view.evidence_id) if view.evidence_id is not None else None

        record = _send_record(view, project)
        if evidence is not None:
            found, message = evidence
            record["evidence"] = {
                "kind": found.kind.value,
                "source": found.source,
                "sender": found.sender,
                "recipient": found.recipient,
                "subject": found.subject,
                "sent_at": _iso(found.sent_at, project),
                "delivered_at": _iso(found.delivered_at, project),
                "smtp_code": found.smtp_code,
                "smtp_detail": found.smtp_detail,
                "content_hash": found.content_hash,
                "attachment_name": found.attachment_name,
                "message_sha256": message.sha256,
                "message_location": message.location,
            }
        if OutputFormat(output_format) is OutputFormat.JSON:
            write_rows([record], [], OutputFormat.JSON)
            return

        row = _send_row(view, project)
        fields: list[tuple[str, Any]] = [(column.heading, row.get(column.key)) for column in _send_columns()]
        fields.insert(3, (_("Notification"), view.notification_type))
        fields.append((_("Match rule"), view.match_rule))
        if evidence is not None:
            found, message = evidence
            fields += [
                (_("Evidence sender"), found.sender),
                (_("Evidence subject"), found.subject),
                (_("Evidence sent"), format_time(found.sent_at, project.timezone)),
                (_("Content hash"), found.content_hash),
                (_("Certificate file"), found.attachment_name),
                (_("Archived message"), message.sha256),
            ]
        write_fields(fields)

    @cli.command("status", help=_("Show per project the messages stored, the mailbox cursor and the sends per state."))
    @_project_option()
    @_format_option()
    @click.pass_obj
    def status_command(app: AppContext, project_code: str | None, output_format: str) -> None:
        now = utcnow()
        chosen = OutputFormat(output_format)
        records: list[dict[str, Any]] = []
        with app.database.session() as session:
            for project in app.projects(project_code):
                status = project_status(session, project, now)
                cursor = status.cursors[0] if status.cursors else None
                record: dict[str, Any] = {
                    "project": project.code,
                    "name": project.name,
                    "messages": status.messages,
                    "evidence": status.evidence,
                    "unrelated": status.unrelated,
                    "quarantined": status.quarantined,
                    "orphans": status.orphans,
                    "last_message_at": _iso(status.last_message_at, project),
                    "last_uid": cursor.last_uid if cursor else None,
                    "uidvalidity": cursor.uidvalidity if cursor else None,
                    "last_reconcile_at": _iso(status.last_reconcile.finished_at, project) if status.last_reconcile else None,
                    "sends": {state.value: status.states.get(state, 0) for state in SendState},
                }
                records.append(record)

        if chosen is not OutputFormat.TABLE:
            flat = [{**{k: v for k, v in r.items() if k != "sends"}, **r["sends"]} for r in records]
            columns = [Column(key, key) for key in flat[0]] if flat else []
            write_rows(flat if chosen is OutputFormat.CSV else records, columns, chosen)
            return

        columns = [
            Column("project", _("Project")),
            Column("messages", _("Messages")),
            Column("evidence", _("Evidence")),
            Column("quarantined", _("Quarantined")),
            Column("orphans", _("Orphans")),
            Column("last_message_at", _("Last message")),
            Column("last_reconcile_at", _("Last reconciliation")),
        ] + [Column(state.value, state_label(state)) for state in SendState]
        human = []
        for record in records:
            project = app.projects(record["project"])[0]
            row = {key: value for key, value in record.items() if key != "sends"}
            for key in ("messages", "evidence", "quarantined", "orphans"):
                row[key] = format_count(record[key])
            for state in SendState:
                row[state.value] = format_count(record["sends"][state.value])
            row["last_message_at"] = format_time(_parse(record["last_message_at"]), project.timezone)
            row["last_reconcile_at"] = format_time(_parse(record["last_reconcile_at"]), project.timezone)
            human.append(row)
        write_rows(records, columns, chosen, human_rows=human)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
