"""The exception tree of acuse.

AcuseError
 +-- ConfigError        the configuration file or environment is invalid
 +-- SecretError        a password or token file is missing or unreadable
 +-- DatabaseError      the database cannot be opened or migrated
 +-- SourceError        a mailbox or message source failed (in monitor)
 +-- ImportRowError ... (in reconcile)

Every error carries a message that a person can act on: what failed, on which value, and what
to do next. The CLI prints ``str(error)`` on one line.
"""


class AcuseError(Exception):
    """Base class of every error that acuse raises on purpose."""


class ConfigError(AcuseError):
    """The configuration is invalid; ``key`` is the dotted path of the offending setting."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SecretError(AcuseError):
    """A secret file named in the configuration cannot be read."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class DatabaseError(AcuseError):
    """The database cannot be opened or brought to the current schema."""
