"""Query commands: ``sends``, ``unmatched``, ``orphans`` and ``show``."""

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from acuse.context import AppContext
from acuse.labels import (
    check_result_label,
    evidence_kind_label,
    format_time,
    match_rule_label,
    send_reason,
    state_choices_help,
    state_label,
    trust_reasons_text,
    trust_verdict_label,
)
from acuse.output import Column, OutputFormat, write_fields, write_rows
from config.database import utcnow
from config.i18n import _, pgettext
from config.settings import ProjectView
from monitor.models import Evidence, StoredMessage
from reconcile.models import SendState
from reconcile.queries import (
    OrphanView,
    SendView,
    find_send_project,
    get_evidence,
    get_send,
    list_orphans,
    list_sends,
)
from reconcile.states import PROBLEM_STATES

EXIT_PROBLEMS = 1
# Row ids are positive 64-bit integers in both SQLite and PostgreSQL, so a larger number cannot
# name a row and the database driver would reject it.
ROW_ID = click.IntRange(1, 2**63 - 1)


@dataclass(frozen=True)
class QueryOptions:
    """The options every listing command shares."""

    project_code: str | None = None
    as_of: str | None = None
    output_format: str = OutputFormat.TABLE.value
    fail_on_problems: bool = False


def iso_time(value: datetime | None, project: ProjectView) -> str | None:
    """ISO 8601 in the project's zone with its offset, the form scripts read."""
    return value.astimezone(project.timezone).isoformat() if value is not None else None


def send_columns() -> list[Column]:
    """Return the columns of a send listing, with headings in the active locale."""
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


def send_record(view: SendView, project: ProjectView) -> dict[str, Any]:
    """Build the stable, English record of a send that JSON and CSV carry."""
    return {
        "project": view.project,
        "send_id": view.send_id,
        "notification_type": view.notification_type,
        "negocio": view.negocio,
        "inmueble": view.inmueble,
        "client": view.client,
        "recipient": view.recipient,
        "subject": view.subject,
        "sent_at": iso_time(view.sent_at, project),
        "lleida_copied": view.lleida_copied,
        "state": view.state.value,
        "reason": send_reason(view, project.timezone, translate=str),
        "deadline": iso_time(view.deadline, project),
        "match_rule": view.match_rule,
        "evidence_id": view.evidence_id,
        "certificate_id": view.certificate_id,
        "delivered_at": iso_time(view.delivered_at, project),
    }


def send_table_columns(several_projects: bool) -> list[Column]:
    """Return the columns a terminal table shows; its reason column names the certificate."""
    keys = [
        "send_id",
        "negocio",
        "inmueble",
        "client",
        "recipient",
        "subject",
        "sent_at",
        "state",
        "reason",
    ]
    if several_projects:
        keys.insert(0, "project")
    by_key = {column.key: column for column in send_columns()}
    return [by_key[key] for key in keys]


def send_row(view: SendView, project: ProjectView) -> dict[str, Any]:
    """Build the same record for people: translated state and reason, local dates."""
    return {
        **send_record(view, project),
        "sent_at": format_time(view.sent_at, project.timezone),
        "delivered_at": format_time(view.delivered_at, project.timezone),
        "state": state_label(view.state),
        "reason": send_reason(view, project.timezone),
    }


def print_sends(
    app: AppContext,
    options: QueryOptions,
    states: frozenset[SendState] | None = None,
    exclude: frozenset[SendState] | None = None,
) -> None:
    """Print the sends of the chosen projects with their state at ``options.as_of``."""
    as_of = app.parse_as_of(options.as_of) or utcnow()
    projects = app.projects(options.project_code)
    found_problem = False

    def views() -> Iterator[tuple[SendView, ProjectView]]:
        nonlocal found_problem
        with app.database.session() as session:
            for project in projects:
                for view in list_sends(
                    session, project, as_of, states=states, exclude_states=exclude
                ):
                    found_problem = found_problem or view.state in PROBLEM_STATES
                    yield view, project

    chosen = OutputFormat(options.output_format)
    if chosen is OutputFormat.TABLE:
        pairs = list(views())
        if not pairs:
            click.echo(_no_sends_line(states, exclude))
            return
        records = [send_record(view, project) for view, project in pairs]
        human = [send_row(view, project) for view, project in pairs]
        write_rows(records, send_table_columns(len(projects) > 1), chosen, human_rows=human)
    else:
        records_stream = (send_record(view, project) for view, project in views())
        write_rows(records_stream, send_columns(), chosen)

    if options.fail_on_problems and found_problem:
        sys.exit(EXIT_PROBLEMS)


def _no_sends_line(
    states: frozenset[SendState] | None, exclude: frozenset[SendState] | None
) -> str:
    """Word the line that a table prints instead of an empty listing of sends."""
    if states:
        labels = ", ".join(state_label(state) for state in SendState if state in states)
        return _("No sends in the state {states}.").format(states=labels)
    if exclude:
        return _("No sends without certification.")
    return _("No sends. Import a send log with 'acuse import-sends'.")


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


def _orphan_record(view: OrphanView, project: ProjectView) -> dict[str, Any]:
    return {
        "project": view.project,
        "evidence_id": view.evidence_id,
        "kind": view.kind.value,
        "certificate_id": view.certificate_id,
        "recipient": view.recipient,
        "subject": view.subject,
        "time": iso_time(view.time, project),
        "deadline": iso_time(view.deadline, project),
        "message_id": view.message_pk,
    }


def evidence_time_label(kind: str | None) -> str:
    """Return the heading of the evidence's time: a delivery, a bounce or a rejection."""
    labels = {
        "delivery_failed": _("Bounced"),
        "rejected": _("Rejected"),
    }
    return labels.get(kind or "", _("Delivered"))


def print_orphans(app: AppContext, options: QueryOptions) -> None:
    """Print the evidence that matched no send after its deadline."""
    as_of = app.parse_as_of(options.as_of) or utcnow()
    records: list[dict[str, Any]] = []
    human: list[dict[str, Any]] = []
    with app.database.session() as session:
        for project in app.projects(options.project_code):
            for view in list_orphans(session, project, as_of):
                record = _orphan_record(view, project)
                records.append(record)
                local_time = format_time(view.time, project.timezone)
                human.append({**record, "kind": evidence_kind_label(view.kind), "time": local_time})

    chosen = OutputFormat(options.output_format)
    if chosen is OutputFormat.TABLE and not records:
        click.echo(_("No orphan evidence."))
    else:
        write_rows(records, _orphan_columns(), chosen, human_rows=human)
    if options.fail_on_problems and records:
        sys.exit(EXIT_PROBLEMS)


def _evidence_record(
    evidence: Evidence, message: StoredMessage, project: ProjectView
) -> dict[str, Any]:
    return {
        "kind": evidence.kind.value,
        "source": evidence.source,
        "sender": evidence.sender,
        "recipient": evidence.recipient,
        "subject": evidence.subject,
        "sent_at": iso_time(evidence.sent_at, project),
        "delivered_at": iso_time(evidence.delivered_at, project),
        "smtp_code": evidence.smtp_code,
        "smtp_detail": evidence.smtp_detail,
        "content_hash": evidence.content_hash,
        "attachment_name": evidence.attachment_name,
        "message_sha256": message.sha256,
        "message_location": message.location,
        "trust_verdict": evidence.trust_verdict.value,
        "dkim_result": evidence.dkim_result.value,
        "dkim_domain": evidence.dkim_domain,
        "signature_result": evidence.signature_result.value,
        "signature_signer": evidence.signature_signer,
        "cross_check_result": evidence.cross_check_result.value,
        "trust_reasons": evidence.trust_reasons.splitlines() if evidence.trust_reasons else [],
    }


def _evidence_fields(
    evidence: Evidence, message: StoredMessage, project: ProjectView
) -> list[tuple[str, Any]]:
    return [
        (_("Evidence sender"), evidence.sender),
        (_("Evidence subject"), evidence.subject),
        (_("Evidence sent"), format_time(evidence.sent_at, project.timezone)),
        (_("Content hash"), evidence.content_hash),
        (_("Certificate file"), evidence.attachment_name),
        (_("Archived message"), message.sha256),
        (_("Authenticity"), trust_verdict_label(evidence.trust_verdict)),
        (_("DKIM check"), check_result_label(evidence.dkim_result)),
        (_("PDF signature check"), check_result_label(evidence.signature_result)),
        (_("Cross-check"), check_result_label(evidence.cross_check_result)),
        (_("Authenticity problems"), trust_reasons_text(evidence.trust_reasons or "")),
    ]


def print_send(app: AppContext, send_id: int, as_of_text: str | None, output_format: str) -> None:
    """Print one send with its evidence and match."""
    as_of = app.parse_as_of(as_of_text) or utcnow()
    with app.database.session() as session:
        code = find_send_project(session, send_id)
        if code is None:
            message = _("No send with id {send_id}: list them with 'acuse sends'.")
            raise click.UsageError(message.format(send_id=send_id))
        project = app.projects(code)[0]
        view = get_send(session, project, send_id, as_of)
        assert view is not None
        evidence = get_evidence(session, view.evidence_id) if view.evidence_id is not None else None

    if OutputFormat(output_format) is OutputFormat.JSON:
        record = send_record(view, project)
        if evidence is not None:
            record["evidence"] = _evidence_record(*evidence, project)
        write_rows([record], [], OutputFormat.JSON)
        return

    row = send_row(view, project)
    time_heading = evidence_time_label(evidence[0].kind.value if evidence else None)
    fields: list[tuple[str, Any]] = [
        (time_heading if column.key == "delivered_at" else column.heading, row.get(column.key))
        for column in send_columns()
    ]
    fields.insert(3, (_("Notification"), view.notification_type))
    fields.append((_("Match rule"), match_rule_label(view.match_rule)))
    if evidence is not None:
        fields += _evidence_fields(*evidence, project)
    write_fields(fields)


def project_option() -> Callable[..., Any]:
    """Build the ``--project`` option."""
    return click.option(
        "--project",
        "project_code",
        metavar=pgettext("metavar", "CODE"),
        help=_("Only this project (its code)."),
    )


def as_of_option() -> Callable[..., Any]:
    """Build the ``--as-of`` option."""
    return click.option(
        "--as-of",
        "as_of",
        metavar="ISO8601",
        help=_("Judge deadlines at this time instead of now, e.g. 2026-11-03T18:00-05:00."),
    )


def format_option(*choices: OutputFormat) -> Callable[..., Any]:
    """Build the ``--format`` option, limited to ``choices`` when given."""
    allowed = choices or tuple(OutputFormat)
    return click.option(
        "--format",
        "output_format",
        type=click.Choice([choice.value for choice in allowed]),
        default=OutputFormat.TABLE.value,
        show_default=True,
        help=(
            _("Output: a table for people, or JSON or CSV with English keys for scripts.")
            if OutputFormat.CSV in allowed
            else _("Output: a table for people, or JSON with English keys for scripts.")
        ),
    )


def _listing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in (
        click.option(
            "--fail-on-problems",
            is_flag=True,
            help=_("Exit with status 1 when the listing shows any problem."),
        ),
        format_option(),
        as_of_option(),
        project_option(),
    ):
        command = option(command)
    return command


def _state_option() -> Callable[..., Any]:
    return click.option(
        "--state",
        "state_values",
        multiple=True,
        type=click.Choice([state.value for state in SendState]),
        metavar=pgettext("metavar", "STATE"),
        help=_("Only sends in this state; repeat for several. States: {states}.").format(
            states=state_choices_help()
        ),
    )


def register(cli: click.Group) -> None:
    """Add the query commands to ``cli``."""

    @cli.command("sends", help=_("List sends with their certification state."))
    @_state_option()
    @_listing_options
    @click.pass_obj
    def sends_command(app: AppContext, /, state_values: tuple[str, ...], **options: Any) -> None:
        states = frozenset(SendState(value) for value in state_values) or None
        print_sends(app, QueryOptions(**options), states=states)

    @cli.command(
        "unmatched", help=_("List sends that are not certified (every state but certified).")
    )
    @_state_option()
    @_listing_options
    @click.pass_obj
    def unmatched_command(
        app: AppContext, /, state_values: tuple[str, ...], **options: Any
    ) -> None:
        states = frozenset(SendState(value) for value in state_values) or None
        print_sends(
            app, QueryOptions(**options), states=states, exclude=frozenset({SendState.CERTIFIED})
        )

    @cli.command("orphans", help=_("List evidence that matched no send after its deadline."))
    @_listing_options
    @click.pass_obj
    def orphans_command(app: AppContext, /, **options: Any) -> None:
        print_orphans(app, QueryOptions(**options))

    @cli.command("show", help=_("Show one send with its evidence and how it was matched."))
    @click.argument("send_id", metavar=pgettext("metavar", "SEND_ID"), type=ROW_ID)
    @as_of_option()
    @format_option(OutputFormat.TABLE, OutputFormat.JSON)
    @click.pass_obj
    def show_command(app: AppContext, send_id: int, as_of: str | None, output_format: str) -> None:
        print_send(app, send_id, as_of, output_format)
