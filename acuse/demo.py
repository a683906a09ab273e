"""``acuse demo``: the whole pipeline on the invented samples, in a temporary folder.

The samples (``samples/envios-paco.csv`` and the mailbox ``samples/evidencias``) were sent on
3 and 4 November 2026, so the demo judges deadlines at a fixed time, DEMO_AS_OF, instead of now:
every state then appears at least once, whatever day the demo runs.
"""

import shutil
import tempfile
from pathlib import Path

import click

from acuse.cli_pipeline import ingest_path, print_import_summary, print_reconcile_summary
from acuse.cli_queries import QueryOptions, print_orphans, print_sends
from acuse.context import AppContext
from acuse.labels import current_locale, format_time
from config.errors import ConfigError
from config.i18n import _
from reconcile.reconciliation import reconcile_project, subject_normalizer
from reconcile.send_import import import_send_log

DEMO_AS_OF = "2026-11-04T09:00:00-05:00"
DEMO_PROJECT = "TDP2"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

DEMO_CONFIG = """\
# Configuration written by `acuse demo`. Paths are relative to this file's folder.
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[defaults]
locale = "{locale}"

[[projects]]
code = "{code}"
name = "Torres del Parque Etapa 2"
timezone = "America/Bogota"
managers = ["cartera@constructora.example"]
missing_after = "6h"
reference_pattern = 'negocio (\\d+)'
"""


def find_samples() -> Path:
    """Return the samples folder of this checkout; raise ConfigError when it is absent."""
    if (SAMPLES_DIR / "envios-paco.csv").is_file():
        return SAMPLES_DIR
    message = _("The demo samples are not in {path}: run the demo from a checkout of acuse.")
    raise ConfigError(message.format(path=SAMPLES_DIR))


def run_demo(folder: Path, locale: str) -> None:
    """Import, ingest and reconcile the samples in ``folder`` and print the results."""
    samples = find_samples()
    config_path = folder / "acuse.toml"
    config_path.write_text(DEMO_CONFIG.format(locale=locale, code=DEMO_PROJECT), encoding="utf-8")

    app = AppContext(config_path)
    try:
        project = app.projects(DEMO_PROJECT)[0]
        as_of = app.parse_as_of(DEMO_AS_OF)
        assert as_of is not None
        click.echo(
            _("acuse demo in {folder}, judged as of {as_of}").format(
                folder=folder, as_of=format_time(as_of, project.timezone)
            )
        )
        click.echo()
        print_import_summary(
            import_send_log(app.database, samples / "envios-paco.csv", project, as_of)
        )
        ingest_path(app, samples / "evidencias", project)
        summary = reconcile_project(app.database, project, subject_normalizer(project), as_of=as_of)
        print_reconcile_summary(app.database, summary)
        click.echo()
        options = QueryOptions(project_code=DEMO_PROJECT, as_of=DEMO_AS_OF)
        print_sends(app, options)
        click.echo()
        click.echo(_("Evidence that matched no send:"))
        print_orphans(app, options)
    finally:
        app.close()


def register(cli: click.Group) -> None:
    """Add the ``demo`` command to ``cli``."""

    @cli.command(
        "demo",
        help=_(
            "Run import, ingest and reconciliation on the invented samples and print the result."
        ),
    )
    @click.option(
        "--keep",
        "keep",
        type=click.Path(file_okay=False, path_type=Path),
        help=_("Keep the demo's configuration, database and archive in this folder."),
    )
    def demo_command(keep: Path | None) -> None:
        locale = current_locale()
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            run_demo(keep.resolve(), locale)
            click.echo()
            click.echo(
                _("Try: acuse --config {config} unmatched --as-of {as_of}").format(
                    config=keep.resolve() / "acuse.toml", as_of=DEMO_AS_OF
                )
            )
            return
        folder = Path(tempfile.mkdtemp(prefix="acuse-demo-"))
        try:
            run_demo(folder, locale)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
