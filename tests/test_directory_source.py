"""DirectorySource on real files: .eml files, folders, mbox files, Maildirs and mixes."""

import logging
import mailbox
from pathlib import Path

import pytest

from monitor.directory_source import DirectorySource, SourceMessage
from monitor.source_errors import MessageFileUnreadable, UnsupportedSource


def message(number: int, newline: str = "\r\n") -> bytes:
    """An invented provider message whose bytes differ for each ``number``."""
    lines = [
        "From: Certificados <certificados@lleida.example>",
        "To: evidencias-tdp2@constructora.example",
        f"Subject: Certificado {number:04d}",
        f"Message-ID: <cert-{number:04d}@lleida.example>",
        "",
        f"Evidencia de entrega numero {number}.",
        "",
    ]
    return newline.join(lines).encode()


def write_mbox(path: Path, messages: list[bytes]) -> None:
    box = mailbox.mbox(path, create=True)
    for raw in messages:
        box.add(raw)
    box.close()


def write_maildir(path: Path, messages: list[bytes]) -> list[str]:
    box = mailbox.Maildir(path, factory=None, create=True)
    return [box.add(raw) for raw in messages]


def read_all(path: Path) -> list[SourceMessage]:
    return list(DirectorySource(path))


def test_eml_file_yields_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "certificado.eml"
    path.write_bytes(message(1))

    messages = read_all(path)

    assert messages == [SourceMessage(location=str(path), raw=message(1))]


def test_folder_yields_eml_sorted_recursively(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.eml").write_bytes(message(4))
    (tmp_path / "b" / "1.eml").write_bytes(message(3))
    (tmp_path / "a.eml").write_bytes(message(1))
    (tmp_path / "a2.EML").write_bytes(message(2))

    messages = read_all(tmp_path)

    assert [item.location for item in messages] == [
        str(tmp_path / "a.eml"),
        str(tmp_path / "a2.EML"),
        str(tmp_path / "b" / "1.eml"),
        str(tmp_path / "b" / "2.eml"),
    ]
    assert [item.raw for item in messages] == [message(number) for number in range(1, 5)]


def test_mbox_file_yields_each_message(tmp_path: Path) -> None:
    path = tmp_path / "evidencias.mbox"
    originals = [message(number, newline="\n") for number in range(3)]
    write_mbox(path, originals)

    messages = read_all(path)

    assert [item.raw for item in messages] == originals
    assert [item.location for item in messages] == [f"{path}#0", f"{path}#1", f"{path}#2"]


def test_mbox_found_by_content(tmp_path: Path) -> None:
    path = tmp_path / "Evidencias"
    write_mbox(path, [message(1, newline="\n")])

    messages = read_all(path)

    assert [item.raw for item in messages] == [message(1, newline="\n")]


def test_maildir_yields_cur_and_new(tmp_path: Path) -> None:
    folder = tmp_path / "Maildir"
    keys = write_maildir(folder, [message(1), message(2)])
    # A client that read the second message moved it to cur and added the Seen flag.
    (folder / "new" / keys[1]).rename(folder / "cur" / f"{keys[1]}:2,S")

    messages = read_all(folder)

    assert sorted(item.location for item in messages) == [f"{folder}#{key}" for key in sorted(keys)]
    assert [item.location for item in messages] == sorted(item.location for item in messages)
    assert {item.raw for item in messages} == {message(1), message(2)}


def test_maildir_reads_subfolders(tmp_path: Path) -> None:
    folder = tmp_path / "Maildir"
    write_maildir(folder, [message(1)])
    write_maildir(folder / ".Evidencias", [message(2)])
    (folder / "dovecot-uidlist").write_text("3 V1 N2\n")

    messages = read_all(folder)

    assert [item.raw for item in messages] == [message(1), message(2)]


def test_mixed_folder_reads_every_kind(tmp_path: Path) -> None:
    (tmp_path / "1-suelto.eml").write_bytes(message(1))
    write_mbox(tmp_path / "2-exportado.mbox", [message(2, "\n"), message(3, "\n")])
    write_maildir(tmp_path / "3-buzon", [message(4)])

    messages = read_all(tmp_path)

    assert [item.raw for item in messages] == [
        message(1),
        message(2, "\n"),
        message(3, "\n"),
        message(4),
    ]


def test_read_twice_gives_same_order(tmp_path: Path) -> None:
    write_maildir(tmp_path / "buzon", [message(number) for number in range(5)])
    (tmp_path / "suelto.eml").write_bytes(message(9))

    first = read_all(tmp_path)
    second = read_all(tmp_path)

    assert first == second


def test_folder_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "certificado.eml").write_bytes(message(1))
    (tmp_path / "notas.txt").write_text("no es un mensaje\n")

    messages = read_all(tmp_path)

    assert [item.raw for item in messages] == [message(1)]


def test_messages_stream_lazily(tmp_path: Path) -> None:
    (tmp_path / "1.eml").write_bytes(message(1))
    (tmp_path / "2.eml").write_bytes(message(2))
    stream = DirectorySource(tmp_path).messages()

    first = next(stream)
    (tmp_path / "2.eml").unlink()

    assert first.raw == message(1)
    with pytest.raises(MessageFileUnreadable) as caught:
        next(stream)
    assert caught.value.path == tmp_path / "2.eml"


def test_missing_path_raises_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "no-existe"

    with pytest.raises(UnsupportedSource) as caught:
        DirectorySource(path).messages()

    assert caught.value.path == path
    assert str(path) in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_unknown_file_raises_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "informe.txt"
    path.write_text("Informe notificaciones cartera\n")

    with pytest.raises(UnsupportedSource) as caught:
        DirectorySource(path).messages()

    assert str(path) in str(caught.value)
    assert "mbox" in str(caught.value)


def test_empty_folder_yields_nothing(tmp_path: Path) -> None:
    assert read_all(tmp_path) == []


def test_warning_names_skipped_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "foto.jpg").write_bytes(b"\xff\xd8\xff")

    read_all(tmp_path)

    assert caplog.records[0].__dict__["path"] == str(tmp_path / "foto.jpg")
