"""Keys that identify a send across imports of PACO's send log.

A row with a send id ("Id envío") is the send (send id, recipient). A row without one is
identified by its content (send time, recipient, subject, negocio, inmueble, notification type)
and by its occurrence index among identical rows of the same file. So two identical rows in one
file are two sends, and the same two rows in a re-import or a later, overlapping export get the
same two keys again.
"""

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC

from reconcile.send_log import SendRow

KEY_VERSION = "send-key-v1"
# Identities per lookup query, below the 999 bound parameters that SQLite before 3.32 allows.
_LOOKUP_CHUNK = 900


def send_key(row: SendRow, occurrence: int) -> str:
    """Return the row's key: the SHA-256 hex digest of its identity tuple as compact JSON.

    ``occurrence`` is ignored for a row with a send id, because the id is already unique.
    """
    if row.external_id is not None:
        identity = [KEY_VERSION, "external_id", row.external_id, row.recipient]
        return hashlib.sha256(_canonical(identity)).hexdigest()
    return _content_key(_canonical(_content(row)), occurrence)


def next_send_key(row: SendRow, counter: "OccurrenceCounter") -> str:
    """Return the key of the next row of a file, counting it in ``counter`` when it has no id."""
    if row.external_id is not None:
        return send_key(row, 0)
    content = _canonical(_content(row))
    occurrence = counter.next_occurrence(hashlib.sha256(content).digest())
    return _content_key(content, occurrence)


def next_send_keys(rows: Sequence[SendRow], counter: "OccurrenceCounter") -> list[str]:
    """Return the keys of the next ``rows`` of a file, in order, as ``next_send_key`` would.

    The rows without a send id are counted in ``counter`` with one query for the batch.
    """
    contents: list[bytes | None] = []
    identities: list[bytes] = []
    for row in rows:
        if row.external_id is None:
            encoded = _canonical(_content(row))
            contents.append(encoded)
            identities.append(hashlib.sha256(encoded).digest())
        else:
            contents.append(None)

    occurrences = iter(counter.next_occurrences(identities))
    keys: list[str] = []
    for row, content in zip(rows, contents, strict=True):
        if content is None:
            keys.append(send_key(row, 0))
        else:
            keys.append(_content_key(content, next(occurrences)))
    return keys


def _content_key(content: bytes, occurrence: int) -> str:
    # Appending the index inside the closing bracket gives the JSON of the longer list, so
    # the content is encoded once per row.
    identity = content[:-1] + b",%d]" % occurrence
    return hashlib.sha256(identity).hexdigest()


def _content(row: SendRow) -> list[object]:
    return [
        KEY_VERSION,
        "content",
        row.sent_at.astimezone(UTC).isoformat(timespec="microseconds"),
        row.recipient,
        row.subject,
        row.negocio,
        row.inmueble,
        row.notification_type,
    ]


def _canonical(identity: Sequence[object]) -> bytes:
    return json.dumps(identity, ensure_ascii=False, separators=(",", ":")).encode()


class OccurrenceCounter:
    """Counts the rows seen so far with each identity, for one file.

    The counts live in a private temporary SQLite database, which SQLite keeps on disk once
    its page cache is full, so memory stays bounded however many rows the file has.
    """

    def __init__(self) -> None:
        # An empty file name opens a temporary database that SQLite deletes when it closes.
        self._connection = sqlite3.connect("")
        self._connection.execute("PRAGMA journal_mode = OFF")
        self._connection.execute("PRAGMA synchronous = OFF")
        self._connection.execute(
            "CREATE TABLE seen (identity BLOB PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID"
        )

    def next_occurrence(self, identity: bytes) -> int:
        """Count one more row with ``identity``; return how many came before it."""
        cursor = self._connection.execute(
            "INSERT INTO seen (identity, count) VALUES (?, 1) "
            "ON CONFLICT (identity) DO UPDATE SET count = count + 1 RETURNING count",
            (identity,),
        )
        (count,) = cursor.fetchone()
        return int(count) - 1

    def next_occurrences(self, identities: Sequence[bytes]) -> list[int]:
        """Count each of ``identities``, in order; return how many came before each one."""
        seen = self._stored_counts(set(identities))
        occurrences: list[int] = []
        for identity in identities:
            before = seen.get(identity, 0)
            occurrences.append(before)
            seen[identity] = before + 1
        self._connection.executemany(
            "INSERT INTO seen (identity, count) VALUES (?, ?) "
            "ON CONFLICT (identity) DO UPDATE SET count = excluded.count",
            seen.items(),
        )
        return occurrences

    def _stored_counts(self, identities: set[bytes]) -> dict[bytes, int]:
        counts: dict[bytes, int] = {}
        pending = list(identities)
        for start in range(0, len(pending), _LOOKUP_CHUNK):
            chunk = pending[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT identity, count FROM seen WHERE identity IN ({marks})"  # noqa: S608 - only placeholders
            counts.update(self._connection.execute(query, chunk).fetchall())
        return counts

    def close(self) -> None:
        self._connection.close()
