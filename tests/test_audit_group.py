"""Reads are audited in group commits: concurrent views share one transaction, every one of
them is in the sealed chain before its answer goes out, and a commit that fails fails every
request whose event it held (none answers as if it were recorded)."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import Action, AuditEvent, Channel, Role
from app.services import audit
from app.services.audit import Origin


def view_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "view"))


def loaded(row, patient) -> None:
    """Read what an audit event takes from the file and the reader now: a thread finding them
    expired would reload them through this test's session, which all the threads share (on
    PostgreSQL one of them then misses the batch)."""
    for obj, names in ((row, ("id", "account_id", "patient_id")), (patient, ("id", "role", "account_id"))):
        for name in names:
            getattr(obj, name)


def together(group, target, n: int) -> None:
    """Run `target` in `n` threads that all arrive while a batch of `group` is committing (its
    writer's lock held), so they go into the next batch together; wait for them to finish."""
    with group.writing:
        threads = [threading.Thread(target=target) for _ in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(group.pending) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(group.pending) == n
    for t in threads:
        t.join(10)


def commits_counter(engine):
    """How many transactions that wrote were committed (a read-only request's commit, which
    only gives its connection back, writes nothing to make durable and is not counted)."""
    counted = {"n": 0}
    wrote: set[int] = set()  # connections that wrote since their last commit or rollback

    def on_execute(conn, _cursor, statement, *_args):
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            wrote.add(id(conn.connection.dbapi_connection))

    def on_commit(conn):
        if id(conn.connection.dbapi_connection) in wrote:
            wrote.discard(id(conn.connection.dbapi_connection))
            counted["n"] += 1

    def on_rollback(conn):
        wrote.discard(id(conn.connection.dbapi_connection))

    listeners = (("before_cursor_execute", on_execute), ("commit", on_commit), ("rollback", on_rollback))
    for name, listener in listeners:
        event.listen(engine, name, listener)

    def stop() -> None:
        for name, listener in listeners:
            event.remove(engine, name, listener)

    return counted, stop


def test_concurrent_link_views_are_all_in_the_chain_in_fewer_commits(app, client, make_user, make_file):
    patient = make_user(Role.PATIENT)
    row = make_file(patient, "photo.jpg")
    from app.urls import view_url

    with app.test_request_context():
        link = view_url(row, patient).replace("http://chartbox.test", "")
    before = view_count()
    counted, stop = commits_counter(db.engine)
    statuses: list[int] = []

    def viewer():
        own = app.test_client()
        for _ in range(15):
            resp = own.get(link)
            statuses.append(resp.status_code)
            resp.close()

    threads = [threading.Thread(target=viewer) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop()
    assert statuses == [200] * 180
    db.session.expire_all()
    assert view_count() - before == 180  # one event per answered view
    verified = audit.verify()
    assert verified.ok, verified.problem
    assert counted["n"] <= 180  # never more than one commit per view (fewer once they overlap)


def test_events_waiting_while_a_batch_commits_go_in_the_next_one_together(app, make_user, make_file):
    patient = make_user(Role.PATIENT)
    row = make_file(patient)
    group = audit._group(app)
    errors: list[BaseException] = []
    loaded(row, patient)

    def read():
        with app.app_context():
            try:
                audit.record_read(Action.VIEW, Origin(Channel.LINK, "127.0.0.1"), actor=patient, file=row)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    counted, stop = commits_counter(db.engine)
    together(group, read, 5)  # a batch is committing: the next five arrive meanwhile
    stop()
    assert not errors
    assert counted["n"] == 1  # the five share one transaction
    db.session.expire_all()
    seqs = sorted(db.session.scalars(select(AuditEvent.seq).where(AuditEvent.action == "view")))
    assert len(seqs) == 5 and seqs == list(range(seqs[0], seqs[0] + 5))
    assert audit.verify().ok


@pytest.fixture
def refuse_audit_rows(app):
    """A callable that makes the database refuse every new audit row (as a full disk would);
    on PostgreSQL the trigger is dropped afterwards (the run's schema outlives the test)."""
    postgres = db.engine.dialect.name == "postgresql"

    def refuse() -> None:
        with db.engine.begin() as conn:
            if postgres:
                conn.execute(sa.text("CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                                     "$$ BEGIN RAISE EXCEPTION 'the disk says no'; END $$"))
                conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON audit_events "
                                     "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"))
            else:
                conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON audit_events "
                                     "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"))

    yield refuse
    if postgres:
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse ON audit_events"))
            conn.execute(sa.text("DROP FUNCTION IF EXISTS refuse_audit()"))


def test_a_failed_group_commit_fails_every_read_in_it_and_writes_none(app, make_user, make_file, refuse_audit_rows):
    patient = make_user(Role.PATIENT)
    row = make_file(patient)
    loaded(row, patient)
    group = audit._group(app)
    refuse_audit_rows()  # the database refuses audit rows from now on
    before = view_count()
    errors: list[BaseException] = []

    def read():
        with app.app_context():
            try:
                audit.record_read(Action.VIEW, Origin(Channel.LINK, "127.0.0.1"), actor=patient, file=row)
            except Exception as exc:  # noqa: BLE001 - what each reader saw
                errors.append(exc)

    together(group, read, 3)
    assert len(errors) == 3 and all(isinstance(e, sa.exc.SQLAlchemyError) for e in errors)
    db.session.expire_all()
    assert view_count() == before
    assert audit.verify().ok


@pytest.mark.parametrize("wrote", [True, False])
def test_a_read_in_a_request_that_wrote_commits_with_its_change(app, make_user, make_file, wrote):
    patient = make_user(Role.PATIENT)
    row = make_file(patient)
    if wrote:
        row.name = "renamed.pdf"  # pending in the session: the event must commit with it
    audit.record_read(Action.VIEW, Origin(Channel.WEB, "127.0.0.1"), actor=patient, file=row)
    db.session.rollback()  # nothing left to commit either way
    db.session.expire_all()
    assert view_count() == 1
    assert (db.session.get(type(row), row.id).name == "renamed.pdf") is wrote


# -- the writers of several processes queue in the kernel, not in SQLite's busy handler ---------

@pytest.mark.sqlite_only("the writers queue on a lock file beside a SQLite database file; PostgreSQL queues its own")
def test_group_commits_of_other_processes_wait_in_line_for_the_database(app, make_user, make_file, tmp_path):
    """Another process holding the writers' lock (as a batch of another worker would) keeps
    this process's batch out until it lets go; then the batch goes in at once."""
    import subprocess
    import sys

    from app.services.group_commit import WriterQueue

    queue = WriterQueue.beside(db.engine)
    assert queue is not None and queue.path.endswith(".db-writers.lock")
    patient = make_user(Role.PATIENT)
    row = make_file(patient)
    loaded(row, patient)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))",
         queue.path, "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        audit.record_read(Action.VIEW, Origin(Channel.LINK), actor=patient, file=row)
        waited = time.monotonic() - started
    finally:
        holder.wait(10)
        holder.stdout.close()
    assert waited >= 0.5  # it waited for the other process (held for 1 s from before it began)
    assert view_count() == 1


def test_no_writer_queue_where_sqlite_files_are_not_involved(app):
    from sqlalchemy import create_engine

    from app.services.group_commit import WriterQueue

    assert WriterQueue.beside(create_engine("sqlite://")) is None
    if db.engine.dialect.name == "postgresql":
        assert WriterQueue.beside(db.engine) is None


def test_an_unwritable_folder_leaves_sqlite_to_its_own_locking(tmp_path):
    from app.services.group_commit import WriterQueue

    queue = WriterQueue(str(tmp_path / "missing-folder" / "x.db-writers.lock"))
    with queue:  # cannot open the lock file: the batch goes ahead, SQLite's own lock still holds
        pass
