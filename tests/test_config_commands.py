"""The command line facing a bad configuration: exit codes, hidden credentials, secret files,
languages, and a check-config that changes nothing."""

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from config.database import create_database_engine, display_url
from config.logs import redact
from tests.acuse_process import run_acuse

PROJECT = """
[[projects]]
code = "TDP2"
name = "Torres del Parque 2"
"""

MAILBOX = """
[projects.mailbox]
host = "127.0.0.1"
security = "plain"
username = "evidencias"
password_file = "{password_file}"
"""

# No PostgreSQL role of this name exists, so the connection fails and the error shows the URL.
LEAKY_URL = "postgresql+psycopg://nouser@127.0.0.1:5432/acuse_nodb?password=s3cretPW"


def write_config(tmp_path: Path, database: str, extra: str = "", archive: str = "archive") -> Path:
    path = tmp_path / "acuse.toml"
    text = f'[database]\nurl = "{database}"\n\n[archive]\npath = "{archive}"\n{extra}'
    path.write_text(text, encoding="utf-8")
    return path


def tree(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*")}


def test_check_config_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///fresh/sub/new.db", PROJECT, archive="store/raw")
    before = tree(tmp_path)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert tree(tmp_path) == before
    assert f"! Database file {tmp_path / 'fresh/sub/new.db'} does not exist yet" in result.stdout
    assert "acuse db upgrade" in result.stdout
    assert f"! Archive folder {tmp_path / 'store/raw'} does not exist yet" in result.stdout


def test_check_config_reports_old_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", PROJECT)
    (tmp_path / "archive").mkdir()
    (tmp_path / "acuse.db").write_bytes(b"")
    before = tree(tmp_path)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert tree(tmp_path) == before
    assert "has schema revision none" in result.stdout
    assert "run acuse db upgrade" in result.stdout


def test_check_config_current_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", PROJECT)
    assert run_acuse(config, "db", "upgrade").returncode == 0
    (tmp_path / "archive").mkdir()
    before = tree(tmp_path)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert tree(tmp_path) == before
    assert "is reachable and its schema is current" in result.stdout
    assert f"✓ Archive folder {tmp_path / 'archive'} is writable." in result.stdout


@pytest.mark.postgres
def test_check_config_postgres_unchanged(tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path, postgres_url, PROJECT)
    (tmp_path / "archive").mkdir()

    before = run_acuse(config, "--lang", "en", "check-config")
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
    engine.dispose()
    upgrade = run_acuse(config, "db", "upgrade")
    after = run_acuse(config, "--lang", "en", "check-config")

    assert before.returncode == 0, before.stderr
    assert "has schema revision none" in before.stdout
    assert tables == []
    assert upgrade.returncode == 0, upgrade.stderr
    assert after.returncode == 0, after.stderr
    assert "is reachable and its schema is current" in after.stdout


def test_check_config_archive_is_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", PROJECT)
    (tmp_path / "archive").write_text("not a folder", encoding="utf-8")

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert "[archive] path" in result.stderr


def test_url_query_password_masked() -> None:
    displayed = display_url(LEAKY_URL)

    assert "s3cretPW" not in displayed
    assert displayed.endswith("?password=***")


def test_unparsable_url_masked() -> None:
    displayed = display_url("postgresql://user:pw1234@host:notaport/x?sslpassword=k3y&a=b")

    assert "pw1234" not in displayed
    assert "k3y" not in displayed
    assert displayed.endswith("&a=b")


def test_url_query_password_redacted_in_logs() -> None:
    create_database_engine(LEAKY_URL).dispose()

    assert redact(f"connecting to {LEAKY_URL}") == (
        "connecting to postgresql+psycopg://nouser@127.0.0.1:5432/acuse_nodb?password=***"
    )


@pytest.mark.parametrize("command", [["status"], ["check-config"], ["db", "upgrade"]])
def test_url_query_password_hidden(tmp_path: Path, command: list[str]) -> None:
    config = write_config(tmp_path, LEAKY_URL, PROJECT)

    result = run_acuse(config, "--lang", "en", *command)

    assert result.returncode in (2, 3), result.stderr
    assert "s3cretPW" not in result.stdout + result.stderr
    assert "password=***" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("secret", ["/dev/zero", "fifo"])
def test_secret_not_regular_file(tmp_path: Path, secret: str) -> None:
    if secret == "fifo":
        os.mkfifo(tmp_path / "fifo")
    config = write_config(
        tmp_path, "sqlite:///acuse.db", PROJECT + MAILBOX.format(password_file=secret)
    )

    result = run_acuse(config, "--lang", "en", "check-config", timeout=60)

    assert result.returncode == 2
    assert "is not a regular file" in result.stderr
    assert "projects[TDP2].mailbox.password_file" in result.stderr


def test_secret_file_too_large(tmp_path: Path) -> None:
    (tmp_path / "huge").write_bytes(b"x" * (64 * 1024 + 1))
    config = write_config(
        tmp_path, "sqlite:///acuse.db", PROJECT + MAILBOX.format(password_file="huge")
    )

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert "is larger than 64 KiB" in result.stderr


def test_secret_file_at_limit_read(tmp_path: Path) -> None:
    (tmp_path / "large").write_bytes(b"x" * (64 * 1024))
    config = write_config(
        tmp_path, "sqlite:///acuse.db", PROJECT + MAILBOX.format(password_file="large")
    )

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert "TDP2: the mailbox password file is readable." in result.stdout


@pytest.mark.parametrize("language", ["xx", "fr", ""])
def test_unknown_language_rejected(tmp_path: Path, language: str) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", PROJECT)

    result = run_acuse(config, "--lang", language, "status")

    # The rejected language cannot choose the message's language, so it is in Spanish.
    assert result.returncode == 2
    assert f"idioma {language!r} no disponible" in result.stderr
    assert "es (es_CO), en" in result.stderr


def test_unknown_locale_key_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", '[defaults]\nlocale = "fr"\n' + PROJECT)

    result = run_acuse(config, "--lang", "en", "status")

    assert result.returncode == 2
    assert "defaults.locale: unsupported language 'fr'" in result.stderr


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("[defaults]\ntimezone = 5", "defaults.timezone"),
        ("[defaults]\nlocale = 5", "defaults.locale"),
        ('[defaults]\nmissing_after = "99999999999w"', "defaults.missing_after"),
        ("[defaults]\nmissing_after = inf", "defaults.missing_after"),
        ("[defaults]\nmissing_after = 1e300", "defaults.missing_after"),
        ("[defaults]\nmissing_after = true", "defaults.missing_after"),
    ],
)
def test_wrong_type_is_config_error(tmp_path: Path, setting: str, key: str) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", setting + "\n" + PROJECT)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert f"{key}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_project_override_wrong_type(tmp_path: Path) -> None:
    setting = PROJECT + 'reference_pattern = 5\n[projects.send_log]\npath = "x.csv"\ncron = 5\n'
    config = write_config(tmp_path, "sqlite:///acuse.db", setting)

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert "projects[0].reference_pattern: " in result.stderr


def test_invalid_environment_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///acuse.db", PROJECT)
    environment = {**os.environ, "ACUSE_PROJECTS": "[{not json"}

    result = run_acuse(config, "--lang", "en", "check-config", env=environment)

    assert result.returncode == 2
    assert "Invalid environment override" in result.stderr
    assert "Traceback" not in result.stderr
