"""The raw archive: every message's bytes, kept on disk under their SHA-256.

A message with hash ``abcd1234...`` lives at ``<root>/ab/cd/abcd1234....eml``. Two levels of 256
folders keep each folder small even with tens of millions of messages. Files are written once,
made read-only (0o440) and never deleted or replaced by acuse.

A store is durable when it returns: the bytes go to a temp file in the final folder, the file is
fsynced, renamed to its final name, and then the folder (and every folder the store created) is
fsynced. With ``defer_sync=True`` the folder fsyncs wait for ``sync()``, so a batch of stores pays
one fsync per folder. The caller must call ``sync()`` before it commits any database row that
points at those blobs. A crash before the rename leaves a temp file whose name never matches
``*.eml``; readers and ``verify`` ignore it.

An ``Archive`` is not safe for use by several threads at once; processes may share a root.
"""

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from config.errors import AcuseError
from config.i18n import _
from monitor.crashpoints import Step, crash_point

logger = logging.getLogger(__name__)

FILE_MODE = 0o440
SUFFIX = ".eml"
TEMP_PREFIX = ".tmp-"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK_SIZE = 1 << 20


class ArchiveError(AcuseError):
    """The archive cannot store or return a blob, named by ``sha256`` when known."""

    def __init__(self, message: str, *, sha256: str | None = None) -> None:
        super().__init__(message)
        self.sha256 = sha256


class BlobNotFound(ArchiveError):
    """No file in the archive has the requested hash."""


class ArchiveIntegrityError(ArchiveError):
    """A file in the archive does not contain the bytes that its name promises."""


@dataclass(frozen=True)
class ArchivedBlob:
    """One message as the archive keeps it. ``created`` is false when it was already there."""

    sha256: str
    path: Path
    size: int
    created: bool


class ProblemKind(StrEnum):
    """Kind of problem that ``verify`` reports for one expected blob."""

    MISSING = "missing"
    ALTERED = "altered"


@dataclass(frozen=True)
class ArchiveProblem:
    """One expected blob that is missing, or whose content no longer has its hash."""

    sha256: str
    path: Path
    kind: ProblemKind
    actual_sha256: str | None = None


def sha256_hex(raw: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``raw``, the key the archive files it under."""
    return hashlib.sha256(raw).hexdigest()


class Archive:
    """A content-addressed folder of raw messages rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending_folders: set[Path] = set()

    def path_for(self, sha256: str) -> Path:
        """Return where the blob with ``sha256`` is (or would be) kept.

        Raises ArchiveError unless ``sha256`` is 64 lowercase hex digits.
        """
        if not _SHA256_HEX.match(sha256):
            message = _(
                "Invalid message hash {sha256!r}: write the SHA-256 as 64 lowercase hex digits."
            ).format(sha256=sha256)
            raise ArchiveError(message, sha256=sha256)
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{SUFFIX}"

    def store(self, raw: bytes, *, defer_sync: bool = False) -> ArchivedBlob:
        """Write ``raw`` under its hash and return where it is. Storing it again changes nothing.

        With ``defer_sync`` the folder fsyncs wait for ``sync()``. Raises ArchiveIntegrityError
        when a file with this hash exists but contains other bytes, and ArchiveError when
        writing fails.
        """
        sha256 = sha256_hex(raw)
        path = self.path_for(sha256)

        try:
            if path.exists():
                self._check_existing(path, sha256, raw)
                return ArchivedBlob(sha256=sha256, path=path, size=len(raw), created=False)
            new_folders = self._make_folders(path.parent)
            self._write_atomically(path, raw)
        except OSError as exc:
            raise _file_system_error(path, sha256, exc) from exc

        self._pending_folders.add(path.parent)
        self._pending_folders.update(folder.parent for folder in new_folders)
        if not defer_sync:
            self.sync()
        logger.debug("Archived blob", extra={"sha256": sha256, "size": len(raw)})
        return ArchivedBlob(sha256=sha256, path=path, size=len(raw), created=True)

    def sync(self) -> None:
        """Fsync every folder changed by stores since the last sync, making them durable."""
        while self._pending_folders:
            folder = self._pending_folders.pop()
            try:
                _fsync_folder(folder)
            except OSError as exc:
                self._pending_folders.add(folder)
                message = _("Cannot flush archive folder {path} to disk: {error}.").format(
                    path=folder, error=exc.strerror or exc
                )
                raise ArchiveError(message) from exc

    @property
    def has_pending_sync(self) -> bool:
        """Whether some stores made with ``defer_sync`` still wait for ``sync()``."""
        return bool(self._pending_folders)

    def read(self, sha256: str) -> bytes:
        """Return the bytes stored under ``sha256`` after checking that they still have it.

        Raises BlobNotFound when no such file exists and ArchiveIntegrityError when its
        content has another hash.
        """
        path = self.path_for(sha256)
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            message = _(
                "Message {sha256} is not in the archive at {root}. Check the archive path in "
                "the configuration, or restore the file from a backup."
            ).format(sha256=sha256, root=self.root)
            raise BlobNotFound(message, sha256=sha256) from exc
        except OSError as exc:
            raise _file_system_error(path, sha256, exc) from exc

        actual = sha256_hex(raw)
        if actual != sha256:
            raise _altered_error(path, sha256, actual)
        return raw

    def verify(self, expected: Iterable[str]) -> Iterator[ArchiveProblem]:
        """Re-hash the file of every expected hash and yield the missing and altered ones.

        ``expected`` is consumed lazily, so a database cursor can feed it without loading every
        hash. Files that no expected hash names are not checked, but ``stored_hashes`` lists
        them.
        """
        for sha256 in expected:
            path = self.path_for(sha256)
            try:
                actual = _hash_file(path)
            except OSError as exc:
                raise _file_system_error(path, sha256, exc) from exc
            if actual is None:
                yield ArchiveProblem(sha256=sha256, path=path, kind=ProblemKind.MISSING)
            elif actual != sha256:
                yield ArchiveProblem(
                    sha256=sha256, path=path, kind=ProblemKind.ALTERED, actual_sha256=actual
                )

    def stored_hashes(self) -> Iterator[str]:
        """Yield the hash named by every archived file, in sorted order, without reading them."""
        for first in _sorted_subfolders(self.root):
            for second in _sorted_subfolders(first):
                for entry in sorted(second.iterdir()):
                    name = entry.name
                    if name.endswith(SUFFIX) and _SHA256_HEX.match(name.removesuffix(SUFFIX)):
                        yield name.removesuffix(SUFFIX)

    def _check_existing(self, path: Path, sha256: str, raw: bytes) -> None:
        size = path.stat().st_size
        if size != len(raw):
            message = _(
                "Archive file {path} has {size} bytes, but a message with its hash has {expected}. "
                "The file was altered: restore it from a backup and run `acuse archive verify`."
            ).format(path=path, size=size, expected=len(raw))
            raise ArchiveIntegrityError(message, sha256=sha256)

        existing = path.read_bytes()
        if existing != raw:
            raise _altered_error(path, sha256, sha256_hex(existing))

    def _make_folders(self, folder: Path) -> list[Path]:
        """Create ``folder`` and its missing parents, and return those created, outermost first."""
        missing: list[Path] = []
        candidate = folder
        while not candidate.exists():
            missing.append(candidate)
            candidate = candidate.parent
        created: list[Path] = []
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                # Another process created it first; that process fsyncs its parent.
                continue
            created.append(path)
        return created

    def _write_atomically(self, path: Path, raw: bytes) -> None:
        temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{path.name}")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(raw)
                handle.flush()
                crash_point(Step.ARCHIVE_WRITTEN)
                os.fchmod(handle.fileno(), FILE_MODE)
                os.fsync(handle.fileno())
            crash_point(Step.ARCHIVE_TEMP_WRITTEN)
            os.replace(temp, path)
            crash_point(Step.ARCHIVE_RENAMED)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


def _file_system_error(path: Path, sha256: str, exc: OSError) -> ArchiveError:
    message = _(
        "Cannot access archive file {path}: {error}. Check that the archive folder exists, "
        "that acuse may read and write it, and that the disk has free space."
    ).format(path=path, error=exc.strerror or exc)
    return ArchiveError(message, sha256=sha256)


def _altered_error(path: Path, sha256: str, actual: str) -> ArchiveIntegrityError:
    message = _(
        "Archive file {path} was altered: its content has SHA-256 {actual}, not {sha256}. "
        "Restore it from a backup and run `acuse archive verify`."
    ).format(path=path, actual=actual, sha256=sha256)
    return ArchiveIntegrityError(message, sha256=sha256)


def _hash_file(path: Path) -> str | None:
    """Return the hex SHA-256 of the file at ``path``, or None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_SIZE):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _sorted_subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if entry.is_dir())


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
