"""``acuse check-config``: validate the configuration and, with ``--live``, reach every mailbox.

Every check prints one line. A failed check does not stop the others, so one run shows every
problem; the command exits with 2 when a configuration check failed and 3 when a live one did.
"""

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import click

from acuse.context import AppContext
from acuse.labels import format_count
from config.errors import AcuseError, ConfigError, SecretError
from config.i18n import _
from config.secrets import read_secret
from config.settings import ProjectView, Settings
from monitor.authenticity import trust_context_for
from monitor.imap_source import ImapSource

EXIT_USAGE = 2
EXIT_RUNTIME = 3


@dataclass
class _Tally:
    config_failures: int = 0
    live_failures: int = 0


def _report(ok: bool, text: str) -> None:
    mark = "✓" if ok else "✗"
    click.echo(f"{mark} {text}", err=not ok)


def _run(tally: _Tally, live: bool, check: Callable[[], str]) -> None:
    try:
        _report(True, check())
    except AcuseError as exc:
        if live and not isinstance(exc, ConfigError | SecretError):
            tally.live_failures += 1
        else:
            tally.config_failures += 1
        _report(False, str(exc))


def password_key(project: ProjectView) -> str:
    """The dotted configuration key of a project's mailbox password file."""
    return f"projects[{project.code}].mailbox.password_file"


def mailbox_password(settings: Settings, project: ProjectView) -> str:
    """Read the password of the project's mailbox from its secret file."""
    mailbox = project.settings.mailbox
    assert mailbox is not None
    return read_secret(settings, mailbox.password_file, password_key(project))


def _check_archive(settings: Settings) -> str:
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


def _check_database(app: AppContext) -> str:
    database = app.database
    return _("Database {url} is reachable and its schema is current.").format(
        url=database.engine.url.render_as_string(hide_password=True)
    )


def _check_trust(project: ProjectView) -> str:
    context = trust_context_for(project.provider)
    return _(
        "{project}: DKIM {dkim}, PDF signature {signature}, {roots} trust root certificates."
    ).format(
        project=project.code,
        dkim=context.dkim_policy.value,
        signature=context.signature_policy.value,
        roots=format_count(len(context.signature_trust.roots)),
    )


def _check_mailbox_secret(settings: Settings, project: ProjectView) -> str:
    mailbox_password(settings, project)
    return _("{project}: the mailbox password file is readable.").format(project=project.code)


def _check_mailbox_live(settings: Settings, project: ProjectView) -> str:
    source = ImapSource.for_project(settings, project, mailbox_password(settings, project))
    state = source.check()
    mailbox = source.mailbox
    return _(
        "{project}: logged in to {username} at {host}:{port}, folder {folder} has {count} messages."
    ).format(
        project=project.code,
        username=mailbox.username,
        host=mailbox.host,
        port=mailbox.effective_port,
        folder=mailbox.folder,
        count=format_count(state.exists),
    )


def check_configuration(app: AppContext, live: bool) -> None:
    """Run every check and exit non-zero when one failed."""
    settings = app.settings
    click.echo(
        _("Configuration {path} is valid: {count} projects.").format(
            path=app.config_path or os.environ.get("ACUSE_CONFIG"), count=len(settings.projects)
        )
    )
    tally = _Tally()
    _run(tally, False, partial(_check_archive, settings))
    _run(tally, False, partial(_check_database, app))

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
        if live:
            _run(tally, True, partial(_check_mailbox_live, settings, project))

    if tally.config_failures:
        sys.exit(EXIT_USAGE)
    if tally.live_failures:
        sys.exit(EXIT_RUNTIME)
