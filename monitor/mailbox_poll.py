"""One pass over a project's IMAP folder: fetch what is new since the cursor and ingest it.

The cursor is ``(uidvalidity, last_uid)`` per project and folder. A UIDVALIDITY that differs from
the cursor's means the server renumbered the folder, so the pass reads it again from the start;
the ledger's unique content hash turns every message already stored into a no-op.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from config.database import Database
from config.settings import ProjectView
from monitor.archive import Archive
from monitor.imap_source import FetchedMessage, FolderState, ImapSource
from monitor.ingest import CursorMove, IncomingMessage, IngestCounts, Ingestor, load_cursor

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    """What one pass over a mailbox folder found and stored."""

    project: str
    folder: str
    state: FolderState
    start_uid: int
    uidvalidity_changed: bool
    counts: IngestCounts = field(default_factory=IngestCounts)
    stopped_early: bool = False


def poll_mailbox(
    database: Database,
    archive: Archive,
    project: ProjectView,
    source: ImapSource,
    should_continue: Callable[[], bool] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> PollResult:
    """Ingest every message of the source's folder that the cursor has not passed yet.

    The source may be connected already, with the folder examined by an earlier pass, in which
    case an idle folder costs one round trip. Each fetched batch is committed with its
    cursor move. ``should_continue`` is called before each batch. When it returns false the
    pass ends there, with every earlier batch committed, and the result is marked as stopped
    early.
    ``progress`` receives the size of each recorded batch.
    """
    folder = source.mailbox.folder
    state = source.refresh()
    cursor = load_cursor(database, project.code, folder)
    changed = cursor is not None and cursor.uidvalidity != state.uidvalidity
    start_uid = cursor.last_uid if cursor is not None and not changed else 0
    result = PollResult(project.code, folder, state, start_uid, changed)

    if changed:
        assert cursor is not None
        log.warning(
            "UIDVALIDITY changed, reading the folder again",
            extra={
                "project": project.code,
                "folder": folder,
                "old_uidvalidity": cursor.uidvalidity,
                "uidvalidity": state.uidvalidity,
            },
        )

    ingestor = Ingestor(database, archive, project)
    if cursor is None or changed:
        # Record the folder's UIDVALIDITY even when it is empty, so the next pass knows it.
        ingestor.record([], CursorMove(folder, state.uidvalidity, start_uid))

    # UIDNEXT at or below the next UID we want means nothing arrived; skip the SEARCH.
    if state.uidnext is None or state.uidnext > start_uid + 1:

        def batches() -> Iterator[tuple[list[IncomingMessage], CursorMove]]:
            for batch in source.fetch_new(start_uid):
                if should_continue is not None and not should_continue():
                    result.stopped_early = True
                    return
                incoming = [_incoming(message, folder, state.uidvalidity) for message in batch]
                yield incoming, CursorMove(folder, state.uidvalidity, batch[-1].uid)

        for size, counts in ingestor.ingest_stream(batches()):
            result.counts.add(counts)
            if progress is not None:
                progress(size)

    log.info(
        "mailbox polled",
        extra={
            "project": project.code,
            "host": source.mailbox.host,
            "folder": folder,
            "uidvalidity": state.uidvalidity,
            "start_uid": start_uid,
            "fetched": result.counts.seen,
            "stored": result.counts.stored,
            "evidence": result.counts.evidence,
            "quarantined": result.counts.quarantined,
            "stopped_early": result.stopped_early,
        },
    )
    return result


def _incoming(message: FetchedMessage, folder: str, uidvalidity: int) -> IncomingMessage:
    return IncomingMessage(
        raw=message.raw, origin="imap", location=folder, uid=message.uid, uidvalidity=uidvalidity
    )
