"""``acuse check-config``: validate the configuration and, with ``--live``, reach every mailbox.

Every check prints one line. A failed check does not stop the others, so one run shows every
problem; the command exits with 2 when a configuration check failed and 3 when a live one did.
The checks change nothing: a missing database file or archive folder, or a schema behind the
newest, is reported with the command that fixes it, a line marked ``!`` that fails nothing.
A mailbox that signs in with OAuth2 is checked in three steps, each on its own line: the token
request, the login with the token, and the folder selection. A step that fails skips the next.
"""

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from acuse.context import AppContext
from acuse.labels import format_count
from config.database import (
    SCHEMA_REVISION,
    create_database_engine,
    display_url,
    read_schema_state,
    reject_unknown_revisions,
)
from config.database_errors import read_only_error
from config.errors import AcuseError, ConfigError, SecretError
from config.i18n import _, ngettext
from config.mailbox_settings import MailboxAuth
from config.secrets import mailbox_password
from config.settings import ProjectView, Settings
from monitor.imap_source import ImapSource
from monitor.oauth2_flows import flow_for_mailbox
from monitor.trust_roots import SignatureTrust
from reconcile.alert_delivery import smtp_password
from reconcile.alert_routing import missing_smtp_warning
from reconcile.smtp_transport import SmtpTransport

EXIT_USAGE = 2
EXIT_RUNTIME = 3


@dataclass(frozen=True)
class Notice:
    """A check's result that fails nothing but names an action, such as creating a file."""

    text: str


@dataclass
class _Tally:
    config_failures: int = 0
    live_failures: int = 0


def _report(ok: bool, text: str) -> None:
    mark = "✓" if ok else "✗"
    click.echo(f"{mark} {text}", err=not ok)


def _warn(text: str) -> None:
    """Print a finding that does not fail the check, such as alerts with no way out."""
    click.echo(f"! {text}", err=True)


def _run(
    tally: _Tally,
    live: bool,
    check: Callable[[], str | Notice],
    failure: Callable[[AcuseError], str] = str,
) -> bool:
    """Run ``check`` and print its line, or the line ``failure`` makes of its error.

    Returns whether the check passed; a Notice passes.
    """
    try:
        result = check()
        if isinstance(result, Notice):
            click.echo(f"! {result.text}")
        else:
            _report(True, result)
    except AcuseError as exc:
        if live and not isinstance(exc, ConfigError | SecretError):
            tally.live_failures += 1
        else:
            tally.config_failures += 1
        _report(False, failure(exc))
        return False
    return True


def check_archive_writable(settings: Settings) -> str:
    """Create the archive folder if needed and prove it writable; raise ConfigError otherwise."""
    path = settings.archive_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".check-", delete=True):
            pass
    except OSError as exc:
        message = _(
            "The archive folder {path} is not writable: {error}. Create it or fix [archive] path."
        )
        raise ConfigError(
            message.format(path=path, error=exc.strerror or exc), key="archive.path"
        ) from exc
    return _("Archive folder {path} is writable.").format(path=path)


def _creatable_below(path: Path) -> Path | None:
    """Return the nearest existing folder above ``path`` when this user may create in it."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
        return ancestor
    return None


def _check_archive(settings: Settings) -> str | Notice:
    """Check that the archive folder is writable, or can be created, without creating it."""
    path = settings.archive_path
    if path.is_dir() and os.access(path, os.W_OK | os.X_OK):
        return _("Archive folder {path} is writable.").format(path=path)
    if not path.exists() and _creatable_below(path) is not None:
        return Notice(
            _(
                "Archive folder {path} does not exist yet: acuse run creates it, or create it "
                "now with mkdir -p {path}."
            ).format(path=path)
        )
    message = _(
        "The archive folder {path} is not a writable folder, and acuse cannot create it: "
        "create it with write access for the service, or fix [archive] path."
    ).format(path=path)
    raise ConfigError(message, key="archive.path")


def _check_database(settings: Settings) -> str | Notice:
    """Check the database and its schema revision without creating or migrating anything."""
    url = settings.database_url
    state = read_schema_state(url)
    displayed = display_url(url)
    if state.sqlite_path is not None and not state.exists:
        return _missing_database_file(state.sqlite_path)
    if not state.current:
        reject_unknown_revisions(url, state.revisions)
        found = ", ".join(sorted(state.revisions)) or _("none")
        return Notice(
            _(
                "Database {url} has schema revision {found}, and this acuse uses {needed}: "
                "run acuse db upgrade (acuse run also upgrades it at start)."
            ).format(url=displayed, found=found, needed=SCHEMA_REVISION)
        )
    if not database_writable(url):
        raise read_only_error(make_url(url))
    return _("Database {url} is reachable and its schema is current.").format(url=displayed)


def database_writable(url: str) -> bool:
    """Return whether acuse may write to the database at ``url``, found without writing.

    SQLite writes the database file, and in WAL mode also creates or writes ``-wal`` and
    ``-shm`` files beside it, so the file, those files when present and the folder must all
    be writable. A PostgreSQL server reports whether this session's transactions are
    read-only, as on a standby.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_database_engine(url)
        try:
            with engine.connect() as connection:
                return connection.exec_driver_sql("SHOW transaction_read_only").scalar() == "off"
        finally:
            engine.dispose()
    if not parsed.database or parsed.database == ":memory:":
        return True

    path = Path(parsed.database)
    companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    files = [path, *(companion for companion in companions if companion.exists())]
    folder_writable = os.access(path.parent, os.W_OK | os.X_OK)
    return folder_writable and all(os.access(file, os.W_OK) for file in files)


def _missing_database_file(path: Path) -> Notice:
    if _creatable_below(path) is None:
        message = _(
            "Database file {path} does not exist, and acuse cannot create it: create its folder "
            "with write access for the service, or fix [database] url."
        ).format(path=path)
        raise ConfigError(message, key="database.url")
    return Notice(
        _(
            "Database file {path} does not exist yet: acuse db upgrade creates it with the "
            "newest schema, and so does acuse run."
        ).format(path=path)
    )


def _check_trust(project: ProjectView) -> str:
    provider = project.provider
    roots = SignatureTrust.from_profile(provider).roots
    return ngettext(
        "{project}: DKIM {dkim}, PDF signature {signature}, {roots} trust root certificate.",
        "{project}: DKIM {dkim}, PDF signature {signature}, {roots} trust root certificates.",
        len(roots),
    ).format(
        project=project.code,
        dkim=provider.dkim_policy.value,
        signature=provider.signature_policy.value,
        roots=format_count(len(roots)),
    )


def _check_mailbox_secret(settings: Settings, project: ProjectView) -> str:
    mailbox = project.settings.mailbox
    assert mailbox is not None
    if mailbox.auth is MailboxAuth.OAUTH2:
        flow_for_mailbox(settings, project.code, mailbox).read_secrets()
        return _("{project}: the OAuth2 secret files are readable.").format(project=project.code)
    mailbox_password(settings, project)
    return _("{project}: the mailbox password file is readable.").format(project=project.code)


def _check_mailbox_live(settings: Settings, project: ProjectView) -> str:
    source = ImapSource.for_project(settings, project, mailbox_password(settings, project))
    state = source.check()
    mailbox = source.mailbox
    return ngettext(
        "{project}: logged in to {username} at {host}:{port}, folder {folder} has {count} message.",
        "{project}: logged in to {username} at {host}:{port}, "
        "folder {folder} has {count} messages.",
        state.exists,
    ).format(
        project=project.code,
        username=mailbox.username,
        host=mailbox.host,
        port=mailbox.effective_port,
        folder=mailbox.folder,
        count=format_count(state.exists),
    )


def _check_smtp_secret(settings: Settings) -> str:
    smtp_password(settings)
    return _("The SMTP settings are valid and their password file, if any, is readable.")


def _check_smtp_live(settings: Settings) -> str:
    smtp = settings.smtp
    assert smtp is not None
    with SmtpTransport(smtp, smtp_password(settings)):
        pass
    if smtp.username is None:
        return _(
            "Connected to the SMTP server {host}:{port} without logging in, because no username "
            "is set; nothing was sent."
        ).format(host=smtp.host, port=smtp.effective_port)
    return _(
        "Connected to the SMTP server {host}:{port} and logged in as {username}; nothing was sent."
    ).format(host=smtp.host, port=smtp.effective_port, username=smtp.username)


def _check_oauth2_live(tally: _Tally, settings: Settings, project: ProjectView) -> None:
    """Obtain a token, sign in with it and examine the folder, one reported step at a time."""
    try:
        source = ImapSource.for_project(settings, project)
    except AcuseError as exc:
        tally.config_failures += 1
        _report(False, str(exc))
        return
    tokens = source.token_source
    assert tokens is not None
    mailbox = source.mailbox
    arguments = {
        "project": project.code,
        "username": mailbox.username,
        "host": mailbox.host,
        "port": mailbox.effective_port,
        "folder": mailbox.folder,
        "url": tokens.token_url,
    }

    def request_token() -> str:
        token = tokens.renew()
        minutes = int(token.lifetime.total_seconds() // 60)
        return ngettext(
            "{project}: obtained an access token from {url}, valid for {minutes} minute.",
            "{project}: obtained an access token from {url}, valid for {minutes} minutes.",
            minutes,
        ).format(minutes=format_count(minutes), **arguments)

    def token_failed(error: AcuseError) -> str:
        return _("{project}: the token request failed: {error}").format(error=error, **arguments)

    def log_in() -> str:
        source.connect()
        return _("{project}: signed in to {username} at {host}:{port} with {mechanism}.").format(
            mechanism=source.login_mechanism, **arguments
        )

    def login_failed(error: AcuseError) -> str:
        mechanism = source.login_mechanism or "OAuth2"
        return _("{project}: the {mechanism} login failed: {error}").format(
            mechanism=mechanism, error=error, **arguments
        )

    def select_folder() -> str:
        state = source.examine()
        return ngettext(
            "{project}: folder {folder} has {count} message.",
            "{project}: folder {folder} has {count} messages.",
            state.exists,
        ).format(count=format_count(state.exists), **arguments)

    def folder_failed(error: AcuseError) -> str:
        return _("{project}: the folder selection failed: {error}").format(error=error, **arguments)

    try:
        if _run(tally, True, request_token, token_failed) and _run(
            tally, True, log_in, login_failed
        ):
            _run(tally, True, select_folder, folder_failed)
    finally:
        source.close()


def check_configuration(app: AppContext, live: bool) -> None:
    """Run every check and exit non-zero when one failed."""
    settings = app.settings
    click.echo(
        ngettext(
            "Configuration {path} is valid: {count} project.",
            "Configuration {path} is valid: {count} projects.",
            len(settings.projects),
        ).format(
            path=app.config_path or os.environ.get("ACUSE_CONFIG"),
            count=format_count(len(settings.projects)),
        )
    )
    tally = _Tally()
    _run(tally, False, partial(_check_archive, settings))
    _run(tally, False, partial(_check_database, settings))

    for project in app.projects():
        _run(tally, False, partial(_check_trust, project))
        if project.settings.mailbox is None:
            _report(
                True,
                _("{project}: no mailbox configured; evidence comes from files.").format(
                    project=project.code
                ),
            )
            continue
        _run(tally, False, partial(_check_mailbox_secret, settings, project))
        if live and project.settings.mailbox.auth is MailboxAuth.OAUTH2:
            _check_oauth2_live(tally, settings, project)
        elif live:
            _run(tally, True, partial(_check_mailbox_live, settings, project))

    smtp_warning = missing_smtp_warning(settings)
    if smtp_warning is not None:
        _warn(smtp_warning)
    if settings.smtp is not None:
        _run(tally, False, partial(_check_smtp_secret, settings))
        if live:
            _run(tally, True, partial(_check_smtp_live, settings))

    if tally.config_failures:
        sys.exit(EXIT_USAGE)
    if tally.live_failures:
        sys.exit(EXIT_RUNTIME)


def register(cli: click.Group) -> None:
    """Add ``check-config`` to ``cli``."""

    @cli.command(
        "check-config", help=_("Validate the configuration file and the secrets it names.")
    )
    @click.option(
        "--live",
        is_flag=True,
        help=_("Also log in to every mailbox and to the SMTP server, changing nothing."),
    )
    @click.pass_obj
    def check_config_command(app: AppContext, live: bool) -> None:
        check_configuration(app, live)
