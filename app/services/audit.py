"""The audit trail: every access and change leaves an event, append-only and hash-chained.

Each event gets the next `seq` and a `hash` over all its fields and the previous event's hash,
under a lock on the chain's head row (so concurrent writers line up, and the event commits
with the change it describes). `verify()` recomputes the chain and names the first event that
was changed, inserted or removed; `export()` streams it. Events never hold file contents,
tokens or auth codes — only who, what, which file, when, from where and how it ended.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.models import Action, AuditChain, AuditEvent, Channel, StoredFile, User
from app.models.base import utcnow
from app.services import transaction
from app.services.group_commit import GroupCommit

if TYPE_CHECKING:
    from flask import Request

#: The hash of the event before the first.
GENESIS = "0" * 64

_CHAIN: Table = AuditChain.__table__  # type: ignore[assignment]  # declared as a Table
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_COLUMNS = tuple(c.name for c in _EVENTS.columns if c.name != "id")
# Built once: the chain's head moves by n events (its row stays locked until commit), the
# events go in as one executemany, the head takes the last hash.
_ADVANCE = (update(_CHAIN).where(_CHAIN.c.id == 1).values(seq=_CHAIN.c.seq + bindparam("n"))
            .returning(_CHAIN.c.seq, _CHAIN.c.last_hash))
_INSERT = insert(_EVENTS)
_SEAL = update(_CHAIN).where(_CHAIN.c.id == 1).values(last_hash=bindparam("last_hash"))


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the door, the client address, its user agent, the request."""

    channel: str  # a Channel, or the name a dialect declares
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Origin:
        return cls(Channel.CLI)

    @classmethod
    def of(cls, request: Request, channel: str) -> Origin:
        """A request's origin: its door, client address, user agent and a request id (the
        client's X-Request-ID when it sends a sane one, else a fresh one)."""
        given = request.headers.get("X-Request-ID", "")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else secrets.token_hex(8)
        return cls(channel, request.remote_addr, request.headers.get("User-Agent"), request_id)


def record(action: Action, origin: Origin, *, actor: User | None, file: StoredFile | None = None,
           account_id: int | None = None, patient_id: int | None = None, outcome: str = "ok",
           **detail: Any) -> AuditEvent:
    """Write an event in the session's transaction, chained; the calling service commits it
    with its change. Returns the event (not attached to the session).

    Args:
        action: what happened. actor: who (None: someone unknown, e.g. a rejected link).
        file: the file it concerns; its clinic and patient are taken from it.
        account_id, patient_id: when there is no file (a listing, a sign-in).
        outcome: "ok", or "refused" for access that was denied.
        detail: small facts (names, counts, reasons) — never contents, tokens or codes.
    """
    event = _event(action, origin, actor, file, account_id, patient_id, outcome, detail)
    _write([event])
    return event


def record_each(action: Action, origin: Origin, *, actor: User | None,
                files: Sequence[tuple[StoredFile, dict]]) -> None:
    """record() of one event per (file, detail), chained in one go (an export of a whole chart:
    three statements for all of its files, not three for each)."""
    if files:
        _write([_event(action, origin, actor, file, None, None, "ok", detail) for file, detail in files])


def _write(events: list[AuditEvent]) -> None:
    """Chain and insert events in the session's transaction (its caller commits them)."""
    session = db.session()
    if session.new or session.dirty or session.deleted:
        session.flush()  # the rows these events name go first (foreign keys)
    # Core statements on the session's connection: the same transaction, without the ORM's
    # unit of work (a view's audit was most of its cost: BENCHMARKS.md, "Small downloads").
    _append(session.connection(), events)
    transaction.mark_written()


def record_read(action: Action, origin: Origin, *, actor: User | None, file: StoredFile | None = None,
                account_id: int | None = None, patient_id: int | None = None, **detail: Any) -> None:
    """Record a read (a view, a listing) and commit it before returning, as record() and then
    transaction.commit() would — grouped with the reads other threads of this process are
    recording at the same moment, in one transaction (a group commit).

    Nothing is answered before its event is durable: each caller returns only once the
    transaction holding its event has committed, and raises what the commit raised. A request
    that has written something of its own commits the usual way, its event with its change.
    """
    session = db.session()
    if session.new or session.dirty or session.deleted or session.info.get(transaction.WROTE):
        record(action, origin, actor=actor, file=file, account_id=account_id, patient_id=patient_id, **detail)
        transaction.commit()
        return
    event = _event(action, origin, actor, file, account_id, patient_id, "ok", detail)
    # Wait holding no pooled connection: the batch's writer needs one, and the request has
    # only read (a waiter holding one could starve the writer it waits for).
    transaction.release_idle_connection()
    _group(current_app._get_current_object()).run(event)  # type: ignore[attr-defined]


def _event(action: Action, origin: Origin, actor: User | None, file: StoredFile | None, account_id: int | None,
           patient_id: int | None, outcome: str, detail: dict[str, Any]) -> AuditEvent:
    """An event with every field but its place in the chain (seq, prev_hash, hash)."""
    return AuditEvent(
        created_at=utcnow(),
        actor_id=actor.id if actor else None,
        actor_role=actor.role if actor else None,
        account_id=account_id or (file.account_id if file else actor.account_id if actor else None),
        patient_id=patient_id if patient_id is not None else (file.patient_id if file else None),
        action=action.value, outcome=outcome,
        file_id=file.id if file else None,
        channel=str(origin.channel),
        ip=(origin.ip or None) and origin.ip[:64],
        user_agent=(origin.user_agent or None) and origin.user_agent[:300],
        request_id=origin.request_id,
        detail=_jsonable(detail) or None,
    )


def _append(conn: Connection, events: Sequence[AuditEvent]) -> list[None]:
    """Chain `events` after the head and insert them, in `conn`'s transaction. The head row's
    update locks it until that transaction ends, so writers line up in one order."""
    head = conn.execute(_ADVANCE, {"n": len(events)}).one_or_none()
    if head is None:  # a database made without the migrations: the head row is made on first use
        # ON CONFLICT DO NOTHING: two first writers both insert it, one waits and then advances.
        insert_head = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(insert_head(_CHAIN).values(id=1, seq=0, last_hash=GENESIS).on_conflict_do_nothing())
        head = conn.execute(_ADVANCE, {"n": len(events)}).one()
    last, prev = head
    for seq, event in enumerate(events, start=last - len(events) + 1):
        event.seq, event.prev_hash = seq, prev or GENESIS
        event.hash = prev = row_hash(event)
    conn.execute(_INSERT, [{name: getattr(event, name) for name in _COLUMNS} for event in events])
    conn.execute(_SEAL, {"last_hash": prev})
    return [None] * len(events)


def _group(app: Flask) -> GroupCommit[AuditEvent]:
    """The app's group commit for read events (one per app and process, made on first use)."""
    group = app.extensions.get("chartbox_audit_group")
    if group is None:
        with _GROUPS_LOCK:
            group = app.extensions.setdefault("chartbox_audit_group", GroupCommit(db.engine.begin, _append,
                                                                                    engine=db.engine))
    return group


_GROUPS_LOCK = threading.Lock()


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(detail, default=str))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def row_hash(event: AuditEvent) -> str:
    """sha256 over the event's fields and the previous hash (stable: version 1 of the format)."""
    fields = [1, event.seq, _iso(event.created_at), event.actor_id, event.actor_role, event.account_id,
              event.patient_id, event.action, event.outcome, event.file_id, event.channel, event.ip,
              event.user_agent, event.request_id, event.detail, event.prev_hash]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Verification:
    """What `verify` found: how many events it checked and the first problem, if any."""

    checked: int = 0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify() -> Verification:
    """Recompute the chain in seq order; name the first event changed, inserted or removed."""
    result = Verification()
    query = select(AuditEvent).order_by(AuditEvent.seq.nulls_first(), AuditEvent.id)
    # Read what the database holds now, not what this session remembers. Closed on every return
    # (on PostgreSQL yield_per is a server-side cursor).
    with closing(db.session.scalars(query.execution_options(populate_existing=True, yield_per=1000))) as events:
        return _verify(events, result)


def _verify(events: Iterable[AuditEvent], result: Verification) -> Verification:
    expected_seq, prev = 1, GENESIS
    for event in events:
        if event.seq is None or event.seq < expected_seq:
            result.problem = f"event id {event.id} was inserted outside the chain (seq {event.seq})"
            return result
        if event.seq > expected_seq:
            result.problem = f"event seq {expected_seq} was removed (the next one is seq {event.seq})"
            return result
        if event.prev_hash != prev:
            result.problem = f"event seq {event.seq} does not follow seq {event.seq - 1} (inserted or reordered)"
            return result
        if row_hash(event) != event.hash:
            result.problem = f"event seq {event.seq} (id {event.id}) was changed"
            return result
        result.checked += 1
        expected_seq, prev = event.seq + 1, event.hash or ""
    head = db.session.get(AuditChain, 1, populate_existing=True)
    if head is not None and (head.seq != expected_seq - 1 or (head.seq and head.last_hash != prev)):
        result.problem = f"events after seq {expected_seq - 1} were removed (the chain ends at seq {head.seq})"
    return result


EXPORT_FIELDS = ("seq", "created_at", "actor_id", "actor_role", "account_id", "patient_id", "action", "outcome",
                 "file_id", "channel", "ip", "user_agent", "request_id", "detail", "hash")


def export(since: datetime | None = None, patient_id: int | None = None) -> Iterator[dict[str, Any]]:
    """The events (oldest first) since a moment, optionally about one patient, as dicts."""
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if patient_id is not None:
        query = query.where(AuditEvent.patient_id == patient_id)
    with closing(db.session.scalars(query.execution_options(yield_per=500))) as events:  # closed if left early
        for event in events:
            row = {name: getattr(event, name) for name in EXPORT_FIELDS}
            row["created_at"] = _iso(event.created_at)
            yield row


#: What a file's access history shows: every look at it and every change.
HISTORY_ACTIONS = (Action.VIEW, Action.UPLOAD, Action.RENAME, Action.DELETE, Action.RESTORE, Action.SHARE,
                   Action.UNSHARE, Action.ATTACH, Action.PURGE, Action.UPDATE, Action.EXPORT)


def file_history(file: StoredFile, limit: int = 200) -> list[AuditEvent]:
    """A file's access history, newest first: who opened, downloaded or changed it, and when."""
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.file_id == file.id, AuditEvent.outcome == "ok",
                                 AuditEvent.action.in_([a.value for a in HISTORY_ACTIONS]))
        .order_by(AuditEvent.seq.desc()).limit(limit)
    ))


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a file's access history, as its patient or their care team reads it."""

    at: datetime
    action: str
    who: str  # "you", a person's name, or "someone outside the clinic's users"
    role: str | None  # the person's role (patient, provider, admin); None when unknown
    via: str  # "page", "API", "shared link", "administrator"
    actor_id: int | None


_VIA = {Channel.WEB.value: "page", Channel.LINK.value: "shared link", Channel.CLI.value: "administrator"}


def access_history(file: StoredFile, viewer: User, limit: int = 200,
                   origin: Origin | None = None) -> list[HistoryEntry]:
    """Who opened, downloaded or changed a file, and when (newest first), for a reader the
    caller has already allowed to see the file. A view through a shared link names the person
    the link was issued to.

    With `origin`, the reading is itself accounted for: a LIST event naming the file and how
    many entries it showed (LIST is no history action, so reading a history never lengthens it).
    """
    events = file_history(file, limit)
    ids = {e.actor_id for e in events if e.actor_id is not None}
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    entries = []
    for event in events:
        person = people.get(event.actor_id) if event.actor_id is not None else None
        if person is not None and person.id == viewer.id:
            who = "you"
        elif person is not None:
            who = person.full_name
        else:
            who = "the clinic's administrator" if event.channel == Channel.CLI.value else "unknown"
        entries.append(HistoryEntry(at=event.created_at, action=event.action, who=who,
                                    role=person.role if person is not None else event.actor_role,
                                    via=_VIA.get(event.channel, "API"), actor_id=event.actor_id))
    if origin is not None:
        record_read(Action.LIST, origin, actor=viewer, file=file, history=len(entries))
    return entries
