"""What the command line imports: each command's module only when it is needed."""

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlmodel import select

from acuse.cli import COMMAND_MODULES, AcuseGroup, LazyGroup, build_cli
from config.database import open_database
from monitor.models import CheckResult, Evidence, TrustVerdict
from tests.evidence_factory import signed_evidence_email
from tests.trust_pki import DKIM_RECORD_NAME, SIGNER_PATTERN, invented_pki

# Runs the command line with the script's arguments, then prints the imported module names.
IMPORTS_SCRIPT = """
import sys
from acuse.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
print(" ".join(sorted(sys.modules)))
"""

CONFIG = """
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"
"""

# Modules that only the daemon, the alert commands or check-config need.
NOT_FOR_POLL = ("apscheduler", "acuse.daemon", "acuse.cli_alerts", "reconcile.alert_delivery")

# The parsers and checkers that only the reader workers run.
PARSERS = ("pyhanko", "pypdf", "dkim", "mailparser", "monitor.reading", "monitor.pdf_signature")

TRUSTING_PROVIDER = """
[providers.lleida]
trust_roots = ["ca.pem"]
signer_pattern = '{pattern}'
dkim_dns = false

[providers.lleida.dkim_keys]
"{record_name}" = "{record}"
"""


def imported_modules(*args: str, cwd: Path) -> set[str]:
    """Run ``acuse ARGS`` in a fresh interpreter and return the names in its sys.modules."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("\n")[-2].split())


@pytest.mark.parametrize("module_name", sorted(set(COMMAND_MODULES.values())))
def test_command_table_matches_modules(module_name: str) -> None:
    group = AcuseGroup(name="acuse")

    importlib.import_module(module_name).register(group)

    listed = {name for name, module in COMMAND_MODULES.items() if module == module_name}
    assert set(group.commands) == listed


def test_lazy_group_lists_every_command() -> None:
    cli = build_cli()

    assert isinstance(cli, LazyGroup)
    assert cli.list_commands(click.Context(cli)) == sorted(COMMAND_MODULES)


def test_lazy_group_loads_one_module() -> None:
    cli = build_cli()

    command = cli.get_command(click.Context(cli), "poll")

    assert command is not None
    assert set(cli.commands) == {"import-sends", "ingest", "poll", "reconcile"}


def test_unknown_command_suggests_close_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "acuse", "--lang", "en", "pol"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert "No such command 'pol'. Did you mean 'poll'?" in result.stderr


def test_subgroups_are_not_lazy() -> None:
    cli = build_cli()

    alerts = cli.get_command(click.Context(cli), "alerts")

    assert type(alerts) is AcuseGroup


def test_poll_skips_other_commands_and_parsers(tmp_path: Path) -> None:
    (tmp_path / "acuse.toml").write_text(CONFIG, encoding="utf-8")

    modules = imported_modules("--config", "acuse.toml", "poll", "--no-reconcile", cwd=tmp_path)

    assert "acuse.cli_pipeline" in modules
    for name in NOT_FOR_POLL:
        assert name not in modules
    for name in PARSERS:
        assert name not in modules


def test_version_imports_no_command(tmp_path: Path) -> None:
    modules = imported_modules("--version", cwd=tmp_path)

    for name in sorted(set(COMMAND_MODULES.values())):
        assert name not in modules


def test_ingest_reads_only_in_workers(tmp_path: Path) -> None:
    pki = invented_pki()
    pki.ca.write_pem(tmp_path / "ca.pem")
    provider = TRUSTING_PROVIDER.format(
        pattern=SIGNER_PATTERN, record_name=DKIM_RECORD_NAME, record=pki.dkim.record
    )
    (tmp_path / "acuse.toml").write_text(CONFIG + provider, encoding="utf-8")
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "signed.eml").write_bytes(signed_evidence_email())

    modules = imported_modules(
        "--config", "acuse.toml", "ingest", "evidence", "--project", "TDP2", cwd=tmp_path
    )

    for name in PARSERS:
        assert name not in modules
    database = open_database(f"sqlite:///{tmp_path / 'acuse.db'}")
    try:
        with database.session() as session:
            evidence = session.exec(select(Evidence)).one()
    finally:
        database.dispose()
    assert evidence.trust_verdict is TrustVerdict.VERIFIED
    assert evidence.signature_result is CheckResult.PASS
    assert evidence.signature_time is not None


def test_reader_worker_imports_no_database_library() -> None:
    script = "import sys, monitor.read_worker; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    modules = set(output.split())

    assert "monitor.reading" in modules
    assert "sqlalchemy" not in modules
    assert "sqlmodel" not in modules
