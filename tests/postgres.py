"""PostgreSQL for tests: one throwaway database per test session and one schema per test.

The server is the one on 127.0.0.1:5432 (trust authentication, user ``postgres``, database
``test``), or the administrative URL in ``ACUSE_TEST_POSTGRES_URL``. Other test runs may
share it, so the session creates its own uniquely named database and drops it at the end, and
each test gets a fresh schema in it, reached through the connection's ``search_path``. With
``ACUSE_REQUIRE_POSTGRES=1`` an unreachable server fails the tests that need it; otherwise
they are skipped with the reason.
"""

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

REQUIRE_ENV = "ACUSE_REQUIRE_POSTGRES"
URL_ENV = "ACUSE_TEST_POSTGRES_URL"
POSTGRES_URL = os.environ.get(URL_ENV, "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_required() -> bool:
    """Whether the environment demands that PostgreSQL tests run instead of being skipped."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def postgres_unavailable(reason: str) -> None:
    """Fail or skip the current test because PostgreSQL cannot be used, naming the cause."""
    message = (
        f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()} is not reachable: {reason}"
    )
    if postgres_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 makes this a failure)")
    pytest.skip(f"{message} (set {REQUIRE_ENV}=1 to fail instead)")


def url_in_database(database: str) -> str:
    """Return the server URL pointing at ``database``."""
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def url_with_schema(database_url: str, schema: str) -> str:
    """Return ``database_url`` with ``schema`` first in every connection's search path."""
    return f"{database_url}?options={quote(f'-csearch_path={schema}')}"


def _autocommit_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Engine]:
    """An administrative engine on database ``test``; fails or skips when it is unreachable."""
    engine = _autocommit_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        postgres_unavailable(str(exc.orig))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: Engine) -> Iterator[str]:
    """The URL of a database that this test session owns; dropped with everything in it."""
    name = f"acuse_tests_{uuid.uuid4().hex[:12]}"
    with postgres_server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url_in_database(name)
    with postgres_server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """The URL of an empty schema for one test, dropped after it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = _autocommit_engine(postgres_database)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield url_with_schema(postgres_database, schema)
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()
