"""The ``acuse`` command line.

Help and messages are in the user's language, so the locale must be known before the commands
are built: ``main`` reads ``--lang``, then the environment, then ``defaults.locale`` from the
configuration file, and only then builds the command tree. Errors print one line and exit with
2 for usage or configuration problems and 3 for runtime failures.
"""

import gettext
import importlib
import logging
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from acuse.context import AppContext
from config.errors import AcuseError, ConfigError, SecretError
from config.i18n import (
    DEFAULT_LOCALE,
    DOMAIN,
    LOCALE_DIR,
    _,
    activate,
    normalize_locale,
    pgettext,
)
from config.logs import configure_logging, redact
from config.settings import CONFIG_ENV
from config.text_safety import escape_unsafe

log = logging.getLogger("acuse")

EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
LOCALE_ENV = "ACUSE_DEFAULTS__LOCALE"
LOG_LEVEL_ENV = "ACUSE_LOG_LEVEL"

COMMAND_MODULES: dict[str, str] = {
    "alerts": "acuse.cli_alerts",
    "archive": "acuse.cli_archive",
    "check-config": "acuse.checks",
    "db": "acuse.cli_daemon",
    "demo": "acuse.demo",
    "import-sends": "acuse.cli_pipeline",
    "ingest": "acuse.cli_pipeline",
    "orphans": "acuse.cli_queries",
    "poll": "acuse.cli_pipeline",
    "quarantine": "acuse.cli_quarantine",
    "reconcile": "acuse.cli_pipeline",
    "reprocess": "acuse.cli_quarantine",
    "run": "acuse.cli_daemon",
    "sends": "acuse.cli_queries",
    "show": "acuse.cli_queries",
    "status": "acuse.cli_status",
    "unmatched": "acuse.cli_queries",
}
"""Each top-level command and the module whose ``register(cli)`` adds it to the group."""


def _option_value(args: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _configured_locale(args: Sequence[str]) -> str | None:
    path = _option_value(args, "--config") or os.environ.get(CONFIG_ENV)
    if not path:
        return None
    try:
        with Path(path).open("rb") as handle:
            value = tomllib.load(handle).get("defaults", {}).get("locale")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        # The command itself reports an unreadable file, in the default language.
        return None
    return value if isinstance(value, str) else None


def initial_locale(args: Sequence[str]) -> str:
    """The locale for this invocation: ``--lang``, then the environment, then the config file."""
    for candidate in (
        _option_value(args, "--lang"),
        os.environ.get(LOCALE_ENV),
        _configured_locale(args),
    ):
        if candidate:
            try:
                return normalize_locale(candidate)
            except ValueError:
                continue
    return DEFAULT_LOCALE


def _check_language(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # main() has already activated a valid --lang; an invalid one is reported here, where click
    # turns it into a usage error with exit code 2.
    if value is None:
        return None
    try:
        return normalize_locale(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _translate_click(locale: str) -> None:
    # click looks its own messages up with gettext.gettext() in the global text domain, which
    # reads the language from the environment; acuse's catalog carries their translations.
    os.environ["LANGUAGE"] = locale
    gettext.bindtextdomain(DOMAIN, LOCALE_DIR)
    gettext.textdomain(DOMAIN)


class AcuseCommand(click.Command):
    """A command whose usage line names its options in the user's language."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", pgettext("metavar", "[OPTIONS]"))
        super().__init__(*args, **kwargs)


class AcuseGroup(click.Group):
    """A command group that turns acuse's errors into one line and an exit code.

    Its commands and sub-groups use the acuse classes too, so every usage line is translated.
    """

    command_class = AcuseCommand
    group_class: type[click.Group] | type[type] | None = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", pgettext("metavar", "[OPTIONS]"))
        if kwargs.get("invoke_without_command"):
            kwargs.setdefault("subcommand_metavar", pgettext("metavar", "[COMMAND] [ARGS]..."))
        else:
            kwargs.setdefault("subcommand_metavar", pgettext("metavar", "COMMAND [ARGS]..."))
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, SecretError) as exc:
            fail(str(exc), EXIT_USAGE)
        except AcuseError as exc:
            fail(str(exc), EXIT_RUNTIME)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SQLAlchemyError as exc:
            fail(str(ctx.obj.database_failure(exc)), EXIT_RUNTIME)
        except Exception as exc:
            log.exception("unexpected error")
            fail(
                _("Unexpected error: {error}").format(error=f"{type(exc).__name__}: {exc}"),
                EXIT_RUNTIME,
            )


class LazyGroup(AcuseGroup):
    """The top-level group, which imports a command's module only when the command is needed.

    A command runs without importing the modules of the others (the daemon's scheduler, alert
    delivery), so it starts sooner. Listing the commands in the help, or resolving a name
    that is not in ``COMMAND_MODULES``, imports every module, so the help and click's "did
    you mean" suggestions see every command.
    """

    # Sub-groups such as ``alerts`` are ordinary groups, not lazy top-level ones.
    group_class = AcuseGroup

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded_modules: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            for known in sorted(set(COMMAND_MODULES.values())):
                self._load(known)
        else:
            self._load(module)
        return super().get_command(ctx, cmd_name)

    def _load(self, module: str) -> None:
        if module not in self._loaded_modules:
            self._loaded_modules.add(module)
            importlib.import_module(module).register(self)


def _person_watching() -> bool:
    """Return whether the command's output reaches a terminal, on standard output or error.

    A person then reads the log lines too, so they are text; JSON lines are for a command
    whose output only reaches files, pipes or the journal. Logs always go to standard error,
    apart from the command's output on standard output.
    """
    return sys.stdout.isatty() or sys.stderr.isatty()


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` as one error line, registered secrets hidden, and exit with ``code``."""
    shown = escape_unsafe(redact(message))
    click.echo(_("Error: {message}").format(message=shown), err=True)
    sys.exit(code)


def _check_lang(value: str) -> None:
    try:
        normalize_locale(value)
    except ValueError:
        message = _("Unsupported language {value!r}: use es (Spanish) or en (English).")
        raise click.BadParameter(message.format(value=value), param_hint="'--lang'") from None


def build_cli() -> click.Group:
    """Build the top-level group. Its commands are added when first needed, with help texts in
    the locale active then."""

    @click.group(
        cls=LazyGroup,
        help=_(
            "Watch certified-email evidence mailboxes and report the sends that are not certified."
        ),
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=CONFIG_ENV,
        help=_("Configuration file (TOML). Default: the ACUSE_CONFIG environment variable."),
    )
    @click.option(
        "--lang",
        metavar=pgettext("metavar", "LANGUAGE"),
        callback=_check_language,
        help=_("Language of messages and tables: es (default) or en."),
    )
    @click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        envvar=LOG_LEVEL_ENV,
        help=_(
            "Lowest level of log lines written to standard error. Default: info for run, "
            "warning for every other command."
        ),
    )
    @click.version_option(package_name="acuse", message="acuse %(version)s")
    @click.pass_context
    def cli(
        ctx: click.Context, config_path: Path | None, lang: str | None, log_level: str | None
    ) -> None:
        if lang is not None:
            _check_lang(lang)
        daemon = ctx.invoked_subcommand == "run"
        level = log_level or ("info" if daemon else "warning")
        configure_logging(level, json_lines=None if daemon else not _person_watching())
        ctx.obj = AppContext(config_path)
        ctx.call_on_close(ctx.obj.close)

    return cli


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with ``argv`` (default: the process arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    locale = initial_locale(args)
    activate(locale)
    _translate_click(locale)
    build_cli().main(args=args, prog_name="acuse")
