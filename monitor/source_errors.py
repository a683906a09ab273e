"""Errors of the message sources, the stage that fetches raw messages.

SourceError
 +-- MailboxError              an IMAP mailbox failed (with project, host, port and folder)
 |    +-- MailboxUnreachable   no connection could be made, or the connection dropped
 |    +-- MailboxTimeout       the server did not reply within the timeout
 |    +-- TlsFailed            the TLS handshake failed or the certificate is not trusted
 |    +-- LoginFailed          the server rejected the user name or the password
 |    +-- FolderNotFound       the folder does not exist in the mailbox
 |    +-- MailboxCommandFailed the server rejected a command or replied without a required item
 +-- UnsupportedSource         a path is not an .eml file, an mbox file, a Maildir or a folder
 +-- MessageFileUnreadable     a message file or folder exists but cannot be read

No message or attribute ever contains a password.
"""

from pathlib import Path

from config.errors import AcuseError


class SourceError(AcuseError):
    """A mailbox or a folder of message files cannot be read."""


class MailboxError(SourceError):
    """An IMAP mailbox failed. The attributes name the project and where it failed."""

    def __init__(self, message: str, *, project: str, host: str, port: int, folder: str) -> None:
        super().__init__(message)
        self.project = project
        self.host = host
        self.port = port
        self.folder = folder


class MailboxUnreachable(MailboxError):
    """No connection to the server could be made, or the server dropped it."""


class MailboxTimeout(MailboxError):
    """The server accepted the connection but did not reply within the timeout."""


class TlsFailed(MailboxError):
    """The TLS handshake failed, the certificate is not trusted, or STARTTLS is missing."""


class LoginFailed(MailboxError):
    """The server rejected the user name or the password."""


class FolderNotFound(MailboxError):
    """The configured folder does not exist in the mailbox."""


class MailboxCommandFailed(MailboxError):
    """The server rejected a command, or its reply lacks an item that acuse requires."""


class UnsupportedSource(SourceError):
    """A path given as a message source is none of the kinds that acuse reads."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class MessageFileUnreadable(SourceError):
    """A message file or folder exists but the operating system refused to read it."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
