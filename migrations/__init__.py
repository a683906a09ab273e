"""Alembic revisions of acuse's schema; ``config.database.upgrade_schema`` applies them."""
