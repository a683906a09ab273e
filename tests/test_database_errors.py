"""Database faults seen from the CLI: one line naming the database and the fix, never SQL."""

import hashlib
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from acuse.demo import DEMO_AS_OF, SAMPLES_DIR
from config.database_errors import database_error
from tests import test_cli
from tests.test_cli import CONFIG, Outcome, Run

# The command-line fixtures of test_cli: a runner, a configuration and a loaded database.
run = test_cli.run
config = test_cli.config
loaded = test_cli.loaded


def assert_one_clean_line(outcome: Outcome) -> None:
    assert outcome.stderr.count("\n") == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert "[SQL" not in outcome.stderr
    assert "sqlalche.me" not in outcome.stderr


@pytest.fixture
def immutable_database(loaded: Path) -> Iterator[Path]:
    """The loaded database file made immutable, so that not even root can write to it."""
    path = loaded.parent / "acuse.db"
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i needs CAP_LINUX_IMMUTABLE: {made.stderr.decode().strip()}")
    yield path
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_reconcile_names_file(run: Run, loaded: Path, immutable_database: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "reconcile", "--as-of", DEMO_AS_OF)

    assert outcome.code == 3
    assert_one_clean_line(outcome)
    assert str(immutable_database) in outcome.stderr
    assert "read-only" in outcome.stderr


def test_read_only_import_names_file(run: Run, loaded: Path, immutable_database: Path) -> None:
    send_log = str(SAMPLES_DIR / "envios-paco.csv")

    outcome = run(
        "--lang", "en", "--config", str(loaded), "import-sends", send_log, "--project", "TDP2"
    )

    assert outcome.code == 3
    assert_one_clean_line(outcome)
    assert str(immutable_database) in outcome.stderr


def test_check_config_finds_read_only(run: Run, loaded: Path, immutable_database: Path) -> None:
    before = hashlib.sha256(immutable_database.read_bytes()).hexdigest()

    outcome = run("--lang", "en", "--config", str(loaded), "check-config")

    assert outcome.code == 2
    assert f"✗ The database {immutable_database} is read-only" in outcome.stderr
    assert hashlib.sha256(immutable_database.read_bytes()).hexdigest() == before


def test_check_config_writable_passes(run: Run, loaded: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "check-config")

    assert outcome.code == 0, outcome.stderr
    assert "is reachable and its schema is current" in outcome.stdout


def test_locked_database_message(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})

    try:
        with engine.connect() as connection, pytest.raises(OperationalError) as caught:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()

    message = str(database_error(caught.value, engine.url))
    assert message.startswith(f"Another process holds the lock on the database {path}")
    assert "SQL" not in message


def test_newer_schema_named(run: Run, loaded: Path) -> None:
    with sqlite3.connect(loaded.parent / "acuse.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_future'")
    connection.close()

    listing = run("--lang", "en", "--config", str(loaded), "sends")
    checked = run("--lang", "en", "--config", str(loaded), "check-config")
    upgraded = run("--lang", "en", "--config", str(loaded), "db", "upgrade")

    assert listing.code == 3
    assert_one_clean_line(listing)
    assert "newer acuse (schema revision 0099_future): upgrade acuse" in listing.stderr
    assert checked.code == 2
    assert "0099_future" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert upgraded.code == 3
    assert "0099_future" in upgraded.stderr


def test_missing_postgres_database_fix(run: Run, tmp_path: Path) -> None:
    name = f"acuse_absent_{uuid.uuid4().hex[:12]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    path = tmp_path / "pg.toml"
    path.write_text(CONFIG.replace("sqlite:///acuse.db", url), encoding="utf-8")

    outcome = run("--lang", "en", "--config", str(path), "sends")

    assert outcome.code == 3
    assert_one_clean_line(outcome)
    assert f"createdb {name}" in outcome.stderr


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00+14:00", "9999-12-31T23:59-05:00"])
def test_as_of_out_of_range(run: Run, config: Path, as_of: str) -> None:
    outcome = run("--lang", "en", "--config", str(config), "sends", "--as-of", as_of)

    assert outcome.code == 2
    assert_one_clean_line(outcome)
    assert repr(as_of) in outcome.stderr
    assert "between 1970-01-01 and 8999-12-31" in outcome.stderr


@pytest.mark.parametrize("send_id", ["99999999999999999999999", "9223372036854775808", "0"])
def test_show_id_out_of_range(run: Run, config: Path, send_id: str) -> None:
    outcome = run("--lang", "en", "--config", str(config), "show", send_id)

    assert outcome.code == 2
    assert "Traceback" not in outcome.stderr
    assert f"{send_id} is not in the range" in outcome.stderr


def test_show_largest_id_not_found(run: Run, config: Path) -> None:
    outcome = run("--lang", "en", "--config", str(config), "show", "9223372036854775807")

    assert outcome.code == 2
    assert "No send with id 9223372036854775807" in outcome.stderr
