"""Messages read from files: ``.eml`` files, mbox files, Maildir folders, or a folder of them.

Used for backfill, replay and the demo. Messages stream one at a time in a deterministic order:
folder entries sorted by name and walked depth first, mbox messages in file order, Maildir
messages sorted by their unique name (which starts with the delivery time). Symbolic links to
folders are not followed, so a link loop cannot trap the walk.

A file counts as mbox when its name ends in ``.mbox`` or it starts with ``From `` (the mbox
separator line). A folder counts as Maildir when it has ``cur`` and ``new`` subfolders; its
Maildir++ subfolders (``.Sent`` and the like) are read too. Other files inside a folder are
skipped with a warning.
"""

import logging
import mailbox
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.i18n import _
from monitor.source_errors import MessageFileUnreadable, UnsupportedSource

logger = logging.getLogger(__name__)

EML_SUFFIX = ".eml"
MBOX_SUFFIX = ".mbox"
MBOX_SEPARATOR = b"From "
MAILDIR_SUBFOLDERS = ("cur", "new", "tmp")


@dataclass(frozen=True)
class SourceMessage:
    """One raw message and where it was read from.

    ``location`` is the file path for an ``.eml`` file, and ``<container>#<key>`` for a message
    inside an mbox file (key = position from 0) or a Maildir (key = the unique file name
    without its flags).
    """

    location: str
    raw: bytes


class DirectorySource:
    """The messages under one path: a file or a folder of the kinds listed in the module."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[SourceMessage]:
        return self.messages()

    def messages(self) -> Iterator[SourceMessage]:
        """Yield every message under the path.

        Raises UnsupportedSource, before yielding anything, when the path is missing or is not
        a kind that acuse reads, and MessageFileUnreadable when a file cannot be read.
        """
        with _unreadable_as_source_error():
            self._check_path()
        if self.path.is_dir():
            return _reading(_walk_folder(self.path))
        if _is_eml(self.path):
            return _reading(_read_eml(self.path))
        return _reading(_read_mbox(self.path))

    def _check_path(self) -> None:
        if self.path.is_dir() or (self.path.is_file() and _is_message_file(self.path)):
            return
        reason = _("it does not exist") if not self.path.exists() else _("its kind is unknown")
        message = _(
            "Cannot read messages from {path}: {reason}. Give an .eml file, an mbox file, a "
            "Maildir folder (with cur and new), or a folder that contains these."
        ).format(path=self.path, reason=reason)
        raise UnsupportedSource(message, path=self.path)


def _reading(messages: Iterator[SourceMessage]) -> Iterator[SourceMessage]:
    with _unreadable_as_source_error():
        yield from messages


@contextmanager
def _unreadable_as_source_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        path = Path(str(exc.filename)) if exc.filename else Path()
        message = _("Cannot read {path}: {error}. Check that the file exists and is readable.")
        raise MessageFileUnreadable(
            message.format(path=path, error=exc.strerror or exc), path=path
        ) from exc


def _walk_folder(folder: Path) -> Iterator[SourceMessage]:
    if _is_maildir(folder):
        yield from _read_maildir(folder)
        return

    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            logger.warning("Skipped a symbolic link to a folder", extra={"path": str(entry)})
        elif entry.is_dir():
            yield from _walk_folder(entry)
        elif _is_eml(entry):
            # Read even when it is no longer a file, so a vanished .eml raises instead of
            # being skipped.
            yield from _read_eml(entry)
        elif entry.is_file() and _is_mbox(entry):
            yield from _read_mbox(entry)
        else:
            logger.warning(
                "Skipped a file that is not .eml, mbox or Maildir", extra={"path": str(entry)}
            )


def _read_eml(path: Path) -> Iterator[SourceMessage]:
    yield SourceMessage(location=str(path), raw=path.read_bytes())


def _read_mbox(path: Path) -> Iterator[SourceMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        # The first key scans the file once for message offsets; get_bytes reads one message.
        for key in box.iterkeys():
            yield SourceMessage(location=f"{path}#{key}", raw=box.get_bytes(key))
    finally:
        box.close()


def _read_maildir(folder: Path) -> Iterator[SourceMessage]:
    box = mailbox.Maildir(folder, factory=None, create=False)
    for key in sorted(box.keys()):
        yield SourceMessage(location=f"{folder}#{key}", raw=box.get_bytes(key))

    for entry in sorted(folder.iterdir()):
        if entry.name in MAILDIR_SUBFOLDERS or entry.is_symlink():
            continue
        if entry.is_dir() and _is_maildir(entry):
            yield from _read_maildir(entry)


def _is_maildir(folder: Path) -> bool:
    return (folder / "cur").is_dir() and (folder / "new").is_dir()


def _is_message_file(path: Path) -> bool:
    return _is_eml(path) or _is_mbox(path)


def _is_eml(path: Path) -> bool:
    return path.suffix.lower() == EML_SUFFIX


def _is_mbox(path: Path) -> bool:
    if path.suffix.lower() == MBOX_SUFFIX:
        return True
    with path.open("rb") as handle:
        return handle.read(len(MBOX_SEPARATOR)) == MBOX_SEPARATOR
