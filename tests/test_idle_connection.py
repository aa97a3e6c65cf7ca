"""transaction.release_idle_connection: a request that has only read gives its pooled connection
back while it waits (a slow client's body, its audit event's group commit), and keeps what it
loaded; one that has written keeps its transaction whole."""
from __future__ import annotations

import io

from sqlalchemy import event

from app.extensions import db
from app.models import Role, User
from app.services import transaction
from app.storage import get_storage
from app.storage.base import new_key


def checked_out() -> int:
    return db.engine.pool.checkedout()


def statements_during(action) -> list[str]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return seen


def test_a_read_gives_its_connection_back_and_keeps_what_it_loaded(app, make_user):
    user_id = make_user(Role.PATIENT, username="reader").id
    db.session.remove()
    user = db.session.get(User, user_id)
    assert checked_out() == 1
    transaction.release_idle_connection()
    assert checked_out() == 0
    # Still attached and loaded: reading it asks the database nothing.
    assert statements_during(lambda: user.username) == []
    assert user in db.session and user.username == "reader"
    assert db.session.get(User, user_id) is user  # the identity map kept it


def test_a_transaction_that_wrote_keeps_its_connection_and_its_rows(app, make_user):
    user_id = make_user(Role.PATIENT, username="writer").id
    db.session.remove()
    user = db.session.get(User, user_id)
    user.full_name = "Changed Name"
    db.session.flush()  # written, not committed
    transaction.release_idle_connection()
    assert checked_out() == 1
    db.session.rollback()
    assert db.session.get(User, user_id).full_name != "Changed Name"


def test_a_transaction_holding_a_new_blob_keeps_it_for_its_rollback(app, make_user):
    user_id = make_user(Role.PATIENT, username="uploader").id
    db.session.remove()
    db.session.get(User, user_id)
    key = new_key()
    get_storage().put(key, io.BytesIO(b"bytes of an upload"))
    transaction.track_blob(key)
    transaction.release_idle_connection()
    assert checked_out() == 1
    db.session.rollback()
    assert not get_storage().exists(key)  # the rollback dropped the blob, as it would have
