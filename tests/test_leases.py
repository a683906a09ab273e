"""Mailbox leases and work claims: claim, renew, expire, balance, and concurrent sessions."""

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlmodel import col

from acuse.instances import InstanceKeeper
from acuse.send_log_watch import SendLogImporter
from config.database import Database, open_database
from config.settings import Settings, project_view, settings_from_mapping
from monitor.leases import (
    Instance,
    InstanceIdInUse,
    MailboxLease,
    claim_mailboxes,
    claim_work,
    instances,
    mailbox_leases,
    register_instance,
    release_work,
    renew_work,
    retire_instance,
)
from reconcile.alert_delivery import _claim_due
from reconcile.alert_models import OutboxMessage
from reconcile.alert_queue import queue_test_email
from reconcile.models import SendImport
from reconcile.send_import import file_sha256
from tests.send_log_samples import HEADERS, write_csv
from tests.test_send_log_watch import MARCH, settled

pytestmark = pytest.mark.both_engines

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
MAILBOXES = [("TDP2", "INBOX"), ("TDP3", "INBOX"), ("TDP4", "Evidencias")]


def claim(database: Database, instance: str, at: datetime) -> set[tuple[str, str]]:
    held = claim_mailboxes(database, instance, MAILBOXES, LEASE, at)
    return {(lease.project, lease.folder) for lease in held}


def holders(database: Database) -> dict[tuple[str, str], str | None]:
    with database.session() as session:
        return {(row.project, row.folder): row.holder for row in mailbox_leases(session)}


def test_lone_instance_claims_every_mailbox(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)

    held = claim(database, "a", T0)

    assert held == set(MAILBOXES)
    assert set(holders(database).values()) == {"a"}


def test_instances_split_mailboxes(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    register_instance(database, "b", "host-b", LEASE, T0)

    first = claim(database, "a", T0)
    second = claim(database, "b", T0)
    first_again = claim(database, "a", T0 + timedelta(seconds=5))

    assert len(first) == 2
    assert second == set(MAILBOXES) - first
    assert first_again == first


def test_live_lease_is_not_taken(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    register_instance(database, "b", "host-b", LEASE, T0 + timedelta(seconds=1))

    taken = claim(database, "b", T0 + timedelta(seconds=2))

    assert taken == set()
    assert set(holders(database).values()) == {"a"}


def test_excess_released_for_newcomer(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    register_instance(database, "b", "host-b", LEASE, T0 + timedelta(seconds=1))

    kept = claim(database, "a", T0 + timedelta(seconds=5))
    taken = claim(database, "b", T0 + timedelta(seconds=6))

    assert len(kept) == 2
    assert taken == set(MAILBOXES) - kept


def test_renewal_extends_lease(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    claim(database, "a", T0 + timedelta(seconds=20))
    register_instance(database, "b", "host-b", LEASE, T0 + timedelta(seconds=40))

    taken = claim(database, "b", T0 + timedelta(seconds=40))

    assert taken == set()


def test_expired_lease_moves(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    register_instance(database, "b", "host-b", LEASE, T0 + timedelta(seconds=10))
    claim(database, "b", T0 + timedelta(seconds=10))

    taken = claim(database, "b", T0 + LEASE + timedelta(seconds=1))

    assert taken == set(MAILBOXES)
    assert set(holders(database).values()) == {"b"}


def test_late_renewal_after_takeover_finds_nothing(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    register_instance(database, "b", "host-b", LEASE, T0 + LEASE + timedelta(seconds=1))
    claim(database, "b", T0 + LEASE + timedelta(seconds=1))

    # "a" was only paused, and now renews: it must not keep what "b" took over.
    register_instance(database, "a", "host-a", LEASE, T0 + LEASE + timedelta(seconds=2))
    late = claim(database, "a", T0 + LEASE + timedelta(seconds=2))

    assert late == set()
    assert set(holders(database).values()) == {"b"}


def test_retired_instance_frees_mailboxes(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    register_instance(database, "b", "host-b", LEASE, T0)
    claim(database, "a", T0)
    claim(database, "b", T0)

    retire_instance(database, "a")
    taken = claim(database, "b", T0 + timedelta(seconds=1))

    assert taken == set(MAILBOXES)


def test_removed_mailbox_released(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)

    held = claim_mailboxes(database, "a", MAILBOXES[:1], LEASE, T0 + timedelta(seconds=1))

    assert [(lease.project, lease.folder) for lease in held] == MAILBOXES[:1]
    assert holders(database)[MAILBOXES[2]] is None


def test_instance_id_in_use_rejected(database: Database) -> None:
    register_instance(database, "shared", "host-a", LEASE, T0)

    with pytest.raises(InstanceIdInUse, match=r"\[instances\] id"):
        register_instance(database, "shared", "host-b", LEASE, T0 + timedelta(seconds=1))


def test_instance_id_free_after_expiry(database: Database) -> None:
    register_instance(database, "shared", "host-a", LEASE, T0)

    register_instance(database, "shared", "host-b", LEASE, T0 + LEASE + timedelta(seconds=1))


def test_work_claim_exclusive_until_lapse(database: Database) -> None:
    first = claim_work(database, "send-log:TDP2:abc", "a", LEASE, T0)
    second = claim_work(database, "send-log:TDP2:abc", "b", LEASE, T0 + timedelta(seconds=1))
    renewed = renew_work(database, "send-log:TDP2:abc", "a", LEASE, T0 + timedelta(seconds=20))
    still_held = claim_work(database, "send-log:TDP2:abc", "b", LEASE, T0 + timedelta(seconds=40))
    after_lapse = claim_work(database, "send-log:TDP2:abc", "b", LEASE, T0 + timedelta(seconds=51))

    assert first
    assert not second
    assert renewed
    assert not still_held
    assert after_lapse
    assert not renew_work(database, "send-log:TDP2:abc", "a", LEASE, T0 + timedelta(seconds=52))


def test_released_work_claimable(database: Database) -> None:
    claim_work(database, "send-log:TDP2:abc", "a", LEASE, T0)

    release_work(database, "send-log:TDP2:abc", "a")

    assert claim_work(database, "send-log:TDP2:abc", "b", LEASE, T0 + timedelta(seconds=1))


def test_concurrent_claims_disjoint(database: Database) -> None:
    names = [f"i{number}" for number in range(4)]
    for name in names:
        register_instance(database, name, f"host-{name}", LEASE, T0)
    mailboxes = [(f"P{number:02}", "INBOX") for number in range(12)]
    barrier = threading.Barrier(len(names))
    results: dict[str, set[tuple[str, str]]] = {}

    def run(name: str) -> None:
        barrier.wait()
        held = claim_mailboxes(database, name, mailboxes, LEASE, T0)
        results[name] = {(lease.project, lease.folder) for lease in held}

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [mailbox for held in results.values() for mailbox in held]
    assert len(claimed) == len(set(claimed))
    assert all(len(held) <= 3 for held in results.values())
    assert set(holders(database).values()) <= {*names, None}


def settings_for(
    make_settings: Callable[..., Settings], instance_id: str, pattern: str = "envios/*.csv"
) -> Settings:
    return make_settings(
        instances={"id": instance_id, "lease": "40s"},
        projects=[{"code": "TDP2", "name": "Torres del Parque", "send_log": {"path": pattern}}],
    )


@pytest.fixture
def march_export(tmp_path: Path) -> Path:
    (tmp_path / "envios").mkdir()
    return settled(write_csv(tmp_path / "envios" / "marzo.csv", [HEADERS, *MARCH]))


def imports(database: Database) -> list[SendImport]:
    with database.session() as session:
        return list(session.execute(select(SendImport).order_by(col(SendImport.id))).scalars())


def test_claimed_file_skipped_by_others(
    march_export: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    first_settings = settings_for(make_settings, "a")
    second_settings = settings_for(make_settings, "b")
    first = InstanceKeeper(database, first_settings)
    second = InstanceKeeper(database, second_settings)
    project = project_view(second_settings, "TDP2")
    name = f"send-log:TDP2:{file_sha256(march_export)}"
    assert first.claim(name)

    while_claimed = SendLogImporter(second_settings, database, second).import_new(project)
    first.release(name)
    after_release = SendLogImporter(second_settings, database, second).import_new(project)
    once_more = SendLogImporter(first_settings, database, first).import_new(project)

    assert while_claimed == []
    assert [summary.added for summary in after_release] == [1]
    assert once_more == []


def test_unfinished_import_redone(
    march_export: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = settings_for(make_settings, "a")
    project = project_view(settings, "TDP2")
    importer = SendLogImporter(settings, database, InstanceKeeper(database, settings))
    importer.import_new(project)
    with database.write() as session:
        session.execute(update(SendImport).values(finished_at=None))

    again = importer.import_new(project)

    assert [(summary.added, summary.already_known) for summary in again] == [(0, 1)]
    assert [record.finished_at is not None for record in imports(database)] == [False, True]


def test_concurrent_importers_import_once(
    march_export: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    keepers = [
        InstanceKeeper(database, settings_for(make_settings, name)) for name in ("a", "b", "c")
    ]
    settings = settings_for(make_settings, "a")
    project = project_view(settings, "TDP2")
    barrier = threading.Barrier(len(keepers))
    added: list[int] = []

    def run(keeper: InstanceKeeper) -> None:
        barrier.wait()
        for summary in SendLogImporter(settings, database, keeper).import_new(project):
            added.append(summary.added)

    threads = [threading.Thread(target=run, args=(keeper,)) for keeper in keepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert added == [1]
    assert len(imports(database)) == 1


def queue_emails(database: Database) -> list[int]:
    """Queue six test emails, due one second apart from T0; return their outbox ids."""
    settings = settings_from_mapping(
        {"projects": [{"code": "TDP2", "name": "Torres", "managers": ["cartera@example.co"]}]},
        Path.cwd(),
    )
    project = project_view(settings, "TDP2")
    with database.write() as session:
        rows = [
            queue_test_email(session, project, ("cartera@example.co",), T0 + timedelta(seconds=n))
            for n in range(6)
        ]
        return [row.id for row in rows if row.id is not None]


def test_concurrent_alert_claims_disjoint(database: Database) -> None:
    queued_emails = queue_emails(database)
    barrier = threading.Barrier(3)
    results: list[list[int]] = []

    def run(token: str) -> None:
        barrier.wait()
        results.append(_claim_due(database, T0 + timedelta(minutes=1), token, flush=False))

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [outbox_id for ids in results for outbox_id in ids]
    assert sorted(claimed) == sorted(queued_emails)


@pytest.fixture
def postgres_database_only(postgres_url: str) -> Iterator[Database]:
    """A PostgreSQL database, for row locks that another session skips; SQLite has none."""
    database = open_database(postgres_url)
    yield database
    database.dispose()


@pytest.mark.postgres
def test_locked_outbox_rows_skipped(postgres_database_only: Database) -> None:
    database = postgres_database_only
    queued_emails = queue_emails(database)
    locked = queued_emails[:2]
    with database.write() as holder:
        holder.execute(
            select(col(OutboxMessage.id)).where(col(OutboxMessage.id).in_(locked)).with_for_update()
        ).all()

        claimed = _claim_due(database, T0 + timedelta(minutes=1), "other-run", flush=False)

    assert sorted(claimed) == sorted(queued_emails[2:])


@pytest.mark.postgres
def test_locked_lease_rows_skipped(postgres_database_only: Database) -> None:
    database = postgres_database_only
    register_instance(database, "a", "host-a", LEASE, T0)
    claim(database, "a", T0)
    retire_instance(database, "a")
    register_instance(database, "b", "host-b", LEASE, T0)
    with database.write() as holder:
        holder.execute(
            select(MailboxLease)
            .where(col(MailboxLease.project) == MAILBOXES[0][0])
            .with_for_update()
        ).all()

        taken = claim(database, "b", T0 + timedelta(seconds=1))

    assert taken == set(MAILBOXES[1:])


def test_forgotten_instance_row_restored(database: Database) -> None:
    register_instance(database, "a", "host-a", LEASE, T0)
    with database.write() as session:
        session.execute(delete(Instance))

    held = claim(database, "a", T0 + timedelta(seconds=1))

    with database.session() as session:
        names = [instance.id for instance in instances(session)]
    assert names == ["a"]
    assert held == set(MAILBOXES)
