"""The raw archive on real files: layout, idempotence, permissions, verify and crash safety."""

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.archive import (
    Archive,
    ArchiveError,
    ArchiveIntegrityError,
    ArchiveProblem,
    BlobNotFound,
    ProblemKind,
)

MESSAGE = (
    b"From: Certificados <certificados@lleida.example>\r\n"
    b"Subject: Certificado 0001\r\n"
    b"\r\n"
    b"Evidencia de entrega.\r\n"
)
OTHER_MESSAGE = MESSAGE.replace(b"0001", b"0002")
MESSAGE_SHA256 = hashlib.sha256(MESSAGE).hexdigest()


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


def overwrite(path: Path, content: bytes) -> None:
    """Replace a read-only archive file's content, as a faulty disk or a person might."""
    path.chmod(0o640)
    path.write_bytes(content)


def test_store_then_read_returns_bytes(archive: Archive) -> None:
    blob = archive.store(MESSAGE)

    assert archive.read(blob.sha256) == MESSAGE


def test_store_reports_hash_and_size(archive: Archive) -> None:
    blob = archive.store(MESSAGE)

    assert blob.sha256 == MESSAGE_SHA256
    assert blob.size == len(MESSAGE)
    assert blob.created


def test_store_uses_two_level_layout(archive: Archive, tmp_path: Path) -> None:
    blob = archive.store(MESSAGE)

    expected = (
        tmp_path / "archive" / MESSAGE_SHA256[:2] / MESSAGE_SHA256[2:4] / f"{MESSAGE_SHA256}.eml"
    )
    assert blob.path == expected
    assert archive.path_for(MESSAGE_SHA256) == expected
    assert expected.read_bytes() == MESSAGE


def test_store_writes_read_only_file(archive: Archive) -> None:
    blob = archive.store(MESSAGE)

    assert stat.S_IMODE(blob.path.stat().st_mode) == 0o440


def test_store_twice_is_noop(archive: Archive) -> None:
    first = archive.store(MESSAGE)
    modified = first.path.stat().st_mtime_ns

    second = archive.store(MESSAGE)

    assert not second.created
    assert second.path == first.path
    assert second.path.stat().st_mtime_ns == modified
    assert os.listdir(first.path.parent) == [first.path.name]


def test_store_over_altered_file_raises(archive: Archive) -> None:
    blob = archive.store(MESSAGE)
    overwrite(blob.path, OTHER_MESSAGE)

    with pytest.raises(ArchiveIntegrityError) as caught:
        archive.store(MESSAGE)

    assert caught.value.sha256 == MESSAGE_SHA256
    assert str(blob.path) in str(caught.value)


def test_store_over_truncated_file_raises(archive: Archive) -> None:
    blob = archive.store(MESSAGE)
    overwrite(blob.path, MESSAGE[:10])

    with pytest.raises(ArchiveIntegrityError, match="10 bytes"):
        archive.store(MESSAGE)


def test_read_missing_raises_not_found(archive: Archive) -> None:
    with pytest.raises(BlobNotFound) as caught:
        archive.read(MESSAGE_SHA256)

    assert caught.value.sha256 == MESSAGE_SHA256


def test_read_altered_raises_integrity_error(archive: Archive) -> None:
    blob = archive.store(MESSAGE)
    overwrite(blob.path, OTHER_MESSAGE)

    with pytest.raises(ArchiveIntegrityError):
        archive.read(blob.sha256)


def test_path_for_rejects_invalid_hash(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="64 lowercase hex digits"):
        archive.path_for("../../etc/passwd")


def test_verify_passes_intact_archive(archive: Archive) -> None:
    hashes = [archive.store(MESSAGE).sha256, archive.store(OTHER_MESSAGE).sha256]

    problems = list(archive.verify(hashes))

    assert problems == []


def test_verify_finds_missing_file(archive: Archive) -> None:
    kept = archive.store(MESSAGE)
    lost = archive.store(OTHER_MESSAGE)
    lost.path.unlink()

    problems = list(archive.verify([kept.sha256, lost.sha256]))

    assert problems == [
        ArchiveProblem(sha256=lost.sha256, path=lost.path, kind=ProblemKind.MISSING)
    ]


def test_verify_finds_altered_file(archive: Archive) -> None:
    blob = archive.store(MESSAGE)
    overwrite(blob.path, OTHER_MESSAGE)

    problems = list(archive.verify([blob.sha256]))

    assert problems == [
        ArchiveProblem(
            sha256=blob.sha256,
            path=blob.path,
            kind=ProblemKind.ALTERED,
            actual_sha256=hashlib.sha256(OTHER_MESSAGE).hexdigest(),
        )
    ]


def test_verify_consumes_generator(archive: Archive) -> None:
    blob = archive.store(MESSAGE)

    problems = list(archive.verify(sha256 for sha256 in [blob.sha256]))

    assert problems == []


def test_stored_hashes_lists_sorted(archive: Archive) -> None:
    hashes = [archive.store(raw).sha256 for raw in (MESSAGE, OTHER_MESSAGE, b"third\r\n")]

    listed = list(archive.stored_hashes())

    assert listed == sorted(hashes)


def test_stored_hashes_on_missing_root_is_empty(archive: Archive) -> None:
    assert list(archive.stored_hashes()) == []


def test_deferred_stores_wait_for_sync(archive: Archive) -> None:
    archive.store(MESSAGE, defer_sync=True)
    archive.store(OTHER_MESSAGE, defer_sync=True)
    waiting = archive.has_pending_sync

    archive.sync()

    assert waiting
    assert not archive.has_pending_sync


def test_immediate_store_leaves_nothing_to_sync(archive: Archive) -> None:
    archive.store(MESSAGE)

    assert not archive.has_pending_sync


def test_crash_before_rename_leaves_no_blob(archive: Archive) -> None:
    # A child process writes and fsyncs the temp file, then dies where the rename would be.
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        import monitor.archive
        monitor.archive.os.replace = lambda source, target: os._exit(9)
        monitor.archive.Archive(Path({str(archive.root)!r})).store({MESSAGE!r})
    """)
    crashed = subprocess.run([sys.executable, "-c", script], check=False)
    folder = archive.path_for(MESSAGE_SHA256).parent

    assert crashed.returncode == 9
    assert [path.name.startswith(".tmp-") for path in folder.iterdir()] == [True]
    assert list(archive.stored_hashes()) == []
    with pytest.raises(BlobNotFound):
        archive.read(MESSAGE_SHA256)


def test_store_after_crash_succeeds(archive: Archive) -> None:
    folder = archive.path_for(MESSAGE_SHA256).parent
    folder.mkdir(parents=True)
    (folder / f".tmp-0123456789abcdef-{MESSAGE_SHA256}.eml").write_bytes(MESSAGE[:7])

    blob = archive.store(MESSAGE)

    assert blob.created
    assert archive.read(MESSAGE_SHA256) == MESSAGE
    assert list(archive.verify([MESSAGE_SHA256])) == []
