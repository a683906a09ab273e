"""Alembic environment: migrates the engine that acuse passes in, or ``sqlalchemy.url``.

``config.database.alembic_config`` passes the engine in ``config.attributes``. Running the
``alembic`` command line directly (for ``revision --autogenerate``) reads the URL from the
``ACUSE_DATABASE_URL`` environment variable instead.
"""

import os

from alembic import context
from sqlalchemy import Engine, create_engine
from sqlmodel import SQLModel

# Autogenerate compares the database with the models' tables.
import monitor.leases
import monitor.models  # noqa: F401
import reconcile.alert_models
import reconcile.models  # noqa: F401

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    return create_engine(os.environ["ACUSE_DATABASE_URL"])


def run_migrations() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
