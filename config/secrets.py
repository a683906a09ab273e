"""Secrets (passwords, tokens) read from files, never from the configuration file itself.

A bare file name is looked up first in ``$CREDENTIALS_DIRECTORY``, where systemd's
``LoadCredential=`` places credentials, then in the configuration file's folder. A relative path
with a folder part, or an absolute path, is read as given (relative to the configuration folder).
"""

import os
import stat
from pathlib import Path

from config.errors import SecretError
from config.i18n import _
from config.mailbox_settings import MailboxAuth
from config.settings import ProjectView, Settings

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
# Passwords, tokens and service-account keys (about 2 KiB) fit easily. The cap keeps a wrong
# file, such as a log or a disk image, out of memory.
MAX_SECRET_BYTES = 64 * 1024


def secret_path(settings: Settings, name: str) -> Path:
    """Return where the secret file ``name`` is read from."""
    candidate = Path(name)
    credentials_dir = os.environ.get(CREDENTIALS_ENV)
    if credentials_dir and candidate.name == name:
        in_credentials = Path(credentials_dir) / name
        if in_credentials.exists():
            return in_credentials
    return settings.resolve_path(candidate)


def _not_found_message(settings: Settings, name: str, key: str, path: Path) -> str:
    """Word a missing secret file; for a bare name, list every folder that was searched."""
    if Path(name).name != name:
        return _("Secret file {path} for {key} not found: create it or fix {key}.").format(
            path=path, key=key
        )
    credentials_dir = os.environ.get(CREDENTIALS_ENV)
    config_path = settings.resolve_path(name)
    if credentials_dir:
        return _(
            "Secret file {name} for {key} not found in ${env} ({credentials}) nor in the "
            "configuration folder ({config}): add a LoadCredential= line for it to the "
            "service, or create it in one of those folders."
        ).format(
            name=name,
            key=key,
            env=CREDENTIALS_ENV,
            credentials=Path(credentials_dir) / name,
            config=config_path,
        )
    return _(
        "Secret file {name} for {key} not found in the configuration folder ({config}), and "
        "${env} is not set, so no credentials folder was searched: set {env} to the folder "
        "that contains {name} (systemd sets it from LoadCredential=), or create {config}."
    ).format(name=name, key=key, env=CREDENTIALS_ENV, config=config_path)


def read_secret(settings: Settings, name: str, key: str) -> str:
    """Read the secret file ``name`` named by the setting ``key``, without its final newline.

    Raises SecretError naming the key and the path when the file is missing, unreadable, not a
    regular file (a device or a pipe could block or never end), larger than MAX_SECRET_BYTES,
    or empty.
    """
    path = secret_path(settings, name)
    try:
        data = _read_regular_file(path, key)
        value = data.decode("utf-8").rstrip("\r\n")
    except FileNotFoundError as exc:
        raise SecretError(_not_found_message(settings, name, key, path), key=key) from exc
    except (OSError, UnicodeDecodeError) as exc:
        message = _("Cannot read secret file {path} for {key}: {error}.").format(
            path=path, key=key, error=exc
        )
        raise SecretError(message, key=key) from exc
    if not value:
        message = _("Secret file {path} for {key} is empty: write the secret into it.").format(
            path=path, key=key
        )
        raise SecretError(message, key=key)
    return value


def _read_regular_file(path: Path, key: str) -> bytes:
    # The type is checked before opening, because opening a FIFO blocks until a writer comes.
    if not stat.S_ISREG(path.stat().st_mode):
        message = _(
            "Secret file {path} for {key} is not a regular file: name a file that contains "
            "only the secret."
        ).format(path=path, key=key)
        raise SecretError(message, key=key)
    with path.open("rb") as handle:
        data = handle.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        message = _(
            "Secret file {path} for {key} is larger than {limit} KiB: name a file that contains "
            "only the secret."
        ).format(path=path, key=key, limit=MAX_SECRET_BYTES // 1024)
        raise SecretError(message, key=key)
    return data


def password_key(project: ProjectView) -> str:
    """The dotted configuration key of a project's mailbox password file."""
    return f"projects[{project.code}].mailbox.password_file"


def mailbox_password(settings: Settings, project: ProjectView) -> str | None:
    """Read the password of the project's mailbox from its secret file.

    Returns None for a mailbox that signs in with OAuth2, which has no password.
    """
    mailbox = project.settings.mailbox
    assert mailbox is not None
    if mailbox.auth is MailboxAuth.OAUTH2 or mailbox.password_file is None:
        return None
    return read_secret(settings, mailbox.password_file, password_key(project))
