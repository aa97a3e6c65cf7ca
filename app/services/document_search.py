"""Document search: a patient's files across their chart and visits, filtered and paged, for
doors that search rather than list one folder (FHIR's DocumentReference search).

The scope and visibility rules are the listings' own (access.in_scope, listings' visibility
condition), imported, never restated: a patient finds only their own files that are visible to
them. Staff may also find files in the trash (deleted, not purged), which such a door shows as
withdrawn rather than as if they never existed. Every search and read is audited as a listing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, User
from app.models.base import MAX_ID
from app.services import access, audit
from app.services.audit import Origin
from app.services.files import find_file, get_file
from app.services.listings import visible_to
from app.services.paging import Page


@dataclass(frozen=True)
class DocumentQuery:
    """What a search narrows to; every field left at its default narrows nothing.

    Attributes:
        categories: any of these categories (an empty set matches nothing).
        clinical: True, only files staff added; False, only the patient's own uploads.
        since, until: created at or after `since`, and before `until` (UTC).
        current: live files; deleted: files in the trash (staff only; ignored for a patient).
        oldest_first: order by creation ascending instead of newest first.
    """

    categories: frozenset[Category] | None = None
    clinical: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    current: bool = True
    deleted: bool = False
    oldest_first: bool = False


def search_documents(actor: User, patient_id: int, query: DocumentQuery, page: int = 1, per_page: int = 100,
                     origin: Origin | None = None) -> Page:
    """One page of a patient's files (chart and visits) matching `query`, with the total.

    Args:
        patient_id: whose files; an unknown one, or one out of the actor's reach, finds nothing
            (no error, so a search never tells which patients exist).
        page, per_page: 1-based page; per_page 0 counts only (no rows are read).
    Returns a Page of StoredFile rows (their visit and creator loaded).
    """
    page = max(1, page)
    patient = db.session.get(User, patient_id) if 0 < patient_id <= MAX_ID else None
    statement = _search(actor, patient, query)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    items: list[StoredFile] = []
    if per_page > 0 and total > (page - 1) * per_page:
        order = (StoredFile.created_at.asc(), StoredFile.id.asc()) if query.oldest_first \
            else (StoredFile.created_at.desc(), StoredFile.id.desc())
        items = list(db.session.scalars(statement.options(joinedload(StoredFile.visit)).order_by(*order)
                                        .limit(per_page).offset((page - 1) * per_page)))
    if origin is not None:
        audit.record_read(Action.LIST, origin, actor=actor, account_id=actor.account_id,
                          patient_id=patient.id if patient is not None and _reaches(actor, patient) else None,
                          files=len(items), total=total, page=page, search="documents")
    return Page(items=items, total=total, page=page, per_page=max(1, per_page))


def _reaches(actor: User, patient: User) -> bool:
    return access.in_scope(actor, patient.id, patient.account_id)


def _search(actor: User, patient: User | None, query: DocumentQuery) -> Select:
    if patient is None or not _reaches(actor, patient):
        return select(StoredFile).where(false())
    statement = select(StoredFile).where(StoredFile.account_id == patient.account_id,
                                         StoredFile.patient_id == patient.id, *visible_to(actor))
    states: list[ColumnElement[bool]] = []
    if query.current:
        states.append(StoredFile.deleted_at.is_(None))
    if query.deleted and actor.is_staff:
        states.append(StoredFile.deleted_at.is_not(None) & StoredFile.purged_at.is_(None))
    statement = statement.where(or_(*states) if states else false())
    if query.categories is not None:
        statement = statement.where(StoredFile.category.in_([c.value for c in query.categories]) if query.categories
                                    else false())
    if query.clinical is True:
        statement = statement.where(StoredFile.creator_id != StoredFile.patient_id)
    elif query.clinical is False:
        statement = statement.where(StoredFile.creator_id == StoredFile.patient_id)
    if query.since is not None:
        statement = statement.where(StoredFile.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(StoredFile.created_at < query.until)
    return statement


def get_document(actor: User, file_id: str | int, origin: Origin | None = None) -> StoredFile:
    """A file the actor may view, or (staff only) one of their clinic's files in the trash.

    Audited as a listing of that one file. Raises NotFound (absent, purged, out of reach; a
    deleted file for a patient) or Forbidden, exactly as files.get_file.
    """
    try:
        row = get_file(actor, file_id)
    except NotFound:
        withdrawn = find_file(file_id)
        if withdrawn is None or not _withdrawn_for(actor, withdrawn):
            raise
        row = withdrawn
    if origin is not None:
        audit.record_read(Action.LIST, origin, actor=actor, file=row, files=1, search="document")
    return row


def _withdrawn_for(actor: User, row: StoredFile) -> bool:
    """A deleted, unpurged file on a chart the (staff) actor reaches."""
    return (actor.is_staff and row.deleted_at is not None and row.purged_at is None and not row.is_held
            and access.in_scope(actor, row.patient_id, row.account_id))
