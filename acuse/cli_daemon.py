"""Daemon commands: ``run`` (the service) and ``db upgrade`` (the schema migrations)."""

import click

from acuse.context import AppContext
from acuse.daemon import run_daemon
from config.database import (
    database_errors,
    display_url,
    open_database,
    reject_newer_schema,
    schema_is_current,
    upgrade_schema,
)
from config.i18n import _


def register(cli: click.Group) -> None:
    """Add ``run`` and the ``db`` group to ``cli``."""

    @cli.command(
        "run",
        help=_(
            "Run the daemon: poll every mailbox, import send logs and reconcile on schedule, "
            "until SIGTERM. SIGHUP reloads the configuration. Logs go to standard error "
            "(JSON lines when it is not a terminal); --log-level defaults to info here."
        ),
    )
    @click.pass_obj
    def run_command(app: AppContext) -> None:
        run_daemon(app.config_path)

    @cli.group("db", help=_("Database maintenance."))
    def db_group() -> None:
        pass

    @db_group.command(
        "upgrade",
        help=_(
            "Bring the database schema to the newest revision (Alembic). The daemon and every "
            "command also do this when they open the database."
        ),
    )
    @click.pass_obj
    def upgrade_command(app: AppContext) -> None:
        database = open_database(app.settings.database_url, upgrade=False)
        url = display_url(database.engine.url)
        try:
            with database_errors(database.engine):
                if schema_is_current(database.engine):
                    message = _("Database {url} is already at the newest schema.")
                    click.echo(message.format(url=url))
                    return
                reject_newer_schema(database.engine)
                upgrade_schema(database.engine)
            click.echo(_("Database {url} upgraded to the newest schema.").format(url=url))
        finally:
            database.dispose()
