"""Listings: which files of a chart or visit an actor sees, and users' current avatars.

Every listing keeps to the actor's scope (a patient sees only their own chart and what is
visible to them), orders newest first (or as a ListQuery asks) and writes its audit event.
A ListQuery narrows a chart's listing within that scope: words (search_index.matches), type,
category, who uploaded it, dates. Offered through files.py, which the doors call.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, TargetType, User, Visit
from app.services import access, audit, search_index, validation
from app.services.audit import Origin
from app.services.paging import Page, paginate
from app.services.targets import Target


class Sort(StrEnum):
    """A listing's order; every one ends with the id, so pages never overlap or skip a row."""

    NEWEST = "newest"
    OLDEST = "oldest"
    NAME = "name"
    NAME_DESC = "-name"
    SIZE = "size"  # smallest first
    SIZE_DESC = "-size"


class Kind(StrEnum):
    """A family of file types, as people name them."""

    PDF = "pdf"
    IMAGE = "image"
    DOCUMENT = "document"  # Word
    SPREADSHEET = "spreadsheet"  # Excel and CSV
    TEXT = "text"


KIND_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.PDF: (validation.PDF,),
    Kind.IMAGE: (validation.PNG, validation.JPEG, validation.HEIC),
    Kind.DOCUMENT: (validation.DOCX,),
    Kind.SPREADSHEET: (validation.XLSX, validation.CSV),
    Kind.TEXT: (validation.TEXT,),
}


class Source(StrEnum):
    """Who put a file in the chart, as its patient sees it."""

    ME = "me"  # the actor uploaded it
    TEAM = "team"  # the care team did (anyone but the chart's patient)


@dataclass(frozen=True)
class ListQuery:
    """What a listing is narrowed to and how it is ordered; every field optional.

    q: words (search_index.words); a file matches when its name or its text holds them all.
    since, until: days (UTC, both included) the file was uploaded on.
    """

    q: str = ""
    kind: Kind | None = None
    category: Category | None = None
    source: Source | None = None
    since: date | None = None
    until: date | None = None
    sort: Sort = Sort.NEWEST

    @property
    def terms(self) -> tuple[str, ...]:
        return search_index.words(self.q)

    @property
    def narrowed(self) -> bool:
        """Whether anything but the order is asked for (the page then says "N results")."""
        return bool(self.terms or self.kind or self.category or self.source or self.since or self.until)

    def detail(self) -> dict[str, Any]:
        """What was asked, for the listing's audit event (only the fields given)."""
        asked = {"q": " ".join(self.terms) or None, "kind": self.kind, "category": self.category,
                 "source": self.source, "since": self.since.isoformat() if self.since else None,
                 "until": self.until.isoformat() if self.until else None,
                 "sort": self.sort if self.sort != Sort.NEWEST else None}
        return {k: str(v) for k, v in asked.items() if v}


def _live() -> Select:
    return select(StoredFile).where(StoredFile.deleted_at.is_(None))


def list_files(actor: User, target: Target | None = None, category: Category | None = None,
               include_shared: bool = False, page: int = 1, per_page: int | None = None,
               origin: Origin | None = None, query: ListQuery | None = None) -> Page:
    """The files of one chart (or one visit) that the actor may see, newest first.

    Args:
        target: the chart; the actor's own when None. A visit target lists that visit's files.
        category: only this category (all when None).
        include_shared: also the visit attachments and consents staff made visible to this
            patient (wherever they are filed).
        page, per_page: 1-based page; per_page defaults to API_PAGE_SIZE, capped at the max.
        query: narrows the listing further (words, type, category, source, dates) and says
            its order; within the same scope, so a search never finds (or counts) a file the
            actor could not list. Recorded in the audit event.
    Raises:
        NotFound: the chart is outside the actor's reach.
    """
    chart = target or Target.chart(actor)
    select_ = _listing(actor, chart, category, include_shared)
    if query is not None:
        select_ = select_.where(*_narrowing(actor, chart, query))
    listing = paginate(select_, page, _page_size(per_page), *_ORDERS[query.sort if query else Sort.NEWEST])
    extra = {"query": query.detail()} if query is not None and query.detail() else {}
    _audit_listing(actor, origin, chart, len(listing.items), total=listing.total,
                   page=listing.page, category=category.value if category else None, **extra)
    return listing


def _narrowing(actor: User, chart: Target, query: ListQuery) -> list[ColumnElement[bool]]:
    """The conditions a ListQuery adds to a listing."""
    conditions: list[ColumnElement[bool]] = []
    if query.terms:
        conditions.append(search_index.matches(query.terms))
    if query.kind is not None:
        conditions.append(StoredFile.media_type.in_(KIND_TYPES[query.kind]))
    if query.category is not None:
        conditions.append(StoredFile.category == query.category.value)
    if query.source == Source.ME:
        conditions.append(StoredFile.creator_id == actor.id)
    elif query.source == Source.TEAM:
        patient_id = chart.patient.id if chart.patient is not None else actor.id
        conditions.append(StoredFile.creator_id != patient_id)
    if query.since is not None:
        conditions.append(StoredFile.created_at >= datetime.combine(query.since, time.min, UTC))
    if query.until is not None:
        conditions.append(StoredFile.created_at < datetime.combine(query.until + timedelta(days=1), time.min, UTC))
    return conditions


def _audit_listing(actor: User, origin: Origin | None, target: Target, count: int, **detail: Any) -> None:
    """Every listing is accounted for: whose chart, how many files (and links) it showed."""
    if origin is None:
        return
    audit.record_read(Action.LIST, origin, actor=actor, account_id=target.account_id, patient_id=target.patient_id,
                      files=count, visit=target.visit.public_id if target.visit else None, **detail)


def list_all_files(actor: User, target: Target, category: Category | None = None,
                   origin: Origin | None = None) -> list[StoredFile]:
    """Every live file of a chart or visit the actor may see, newest first, unpaged.

    For listings whose dialect or page has no paging and whose size a visit bounds (a visit's
    attachments). Raises NotFound as list_files.
    """
    query = _listing(actor, target, category, include_shared=False)
    rows = list(db.session.scalars(query.order_by(*_NEWEST_FIRST)))
    _audit_listing(actor, origin, target, len(rows))
    return rows


def list_visits_with_files(actor: User, patient: User,
                           origin: Origin | None = None) -> list[tuple[Visit, list[StoredFile]]]:
    """A patient's visits, newest first, each with its live files the actor may see (newest
    first), in one query. Raises NotFound when the chart is out of the actor's reach."""
    if not access.in_scope(actor, patient.id, patient.account_id):
        raise NotFound("No such user.")
    on = and_(StoredFile.visit_id == Visit.id, StoredFile.target_type == TargetType.VISIT.value,
              StoredFile.deleted_at.is_(None), *visible_to(actor))
    rows = db.session.execute(
        select(Visit, StoredFile).outerjoin(StoredFile, on).where(Visit.patient_id == patient.id)
        .order_by(Visit.created_at.desc(), Visit.id.desc(), *_NEWEST_FIRST)
    ).all()
    groups: dict[int, tuple[Visit, list[StoredFile]]] = {}
    for visit, row in rows:
        group = groups.setdefault(visit.id, (visit, []))
        if row is not None:
            group[1].append(row)
    _audit_listing(actor, origin, Target.chart(patient), sum(len(g[1]) for g in groups.values()),
                   visits=len(groups))
    return list(groups.values())


_NEWEST_FIRST = (StoredFile.created_at.desc(), StoredFile.id.desc())
_ORDERS = {
    Sort.NEWEST: _NEWEST_FIRST,
    Sort.OLDEST: (StoredFile.created_at.asc(), StoredFile.id.asc()),
    Sort.NAME: (func.lower(StoredFile.name).asc(), StoredFile.id.asc()),
    Sort.NAME_DESC: (func.lower(StoredFile.name).desc(), StoredFile.id.desc()),
    Sort.SIZE: (StoredFile.size.asc(), StoredFile.id.asc()),
    Sort.SIZE_DESC: (StoredFile.size.desc(), StoredFile.id.desc()),
}


def _listing(actor: User, target: Target, category: Category | None, include_shared: bool) -> Select:
    """The query behind the listings: one chart (or visit), live files, the actor's scope."""
    if target.patient is None or not access.in_scope(actor, target.patient.id, target.account_id):
        raise NotFound("No such user.")
    condition: ColumnElement[bool] = (StoredFile.target_type == target.type.value) & (StoredFile.target_id == target.id)
    if category is not None:
        condition = condition & (StoredFile.category == category.value)
    if include_shared:
        released = (StoredFile.patient_id == target.patient.id) & StoredFile.visible.is_(True) \
            & StoredFile.category.in_([Category.INTAKE_ATTACHMENT.value, Category.USER_CONSENT.value]) \
            & (StoredFile.creator_id != target.patient.id)
        condition = or_(condition, released)
    query = _live().where(StoredFile.account_id == target.account_id, condition, *visible_to(actor))
    if actor.is_patient:  # a patient sees their own chart only; avatars of others never
        query = query.where(StoredFile.patient_id == actor.id)
    # Each row names its visit (pages say "From visit: …", the API dialects give its id): loaded
    # in the same statement, not one SELECT per visit (N+1).
    return query.options(joinedload(StoredFile.visit))


def visible_to(actor: User) -> tuple[ColumnElement[bool], ...]:
    """What a listing adds for this actor: a patient never sees a file not visible to them."""
    return (StoredFile.visible.is_(True),) if actor.is_patient else ()


def current_avatar(user: User) -> StoredFile | None:
    """The user's live profile picture (one per user), if any; no access check (it is their own)."""
    return db.session.scalar(_live().where(
        StoredFile.patient_id == user.id, StoredFile.category == Category.USER_AVATAR,
        StoredFile.target_type == TargetType.USER,
    ).order_by(*_NEWEST_FIRST).limit(1))


def current_avatars(users: list[User]) -> dict[int, StoredFile]:
    """current_avatar of many users in one query (a page listing people), by user id; users
    without one are absent."""
    found: dict[int, StoredFile] = {}
    if users:
        for row in db.session.scalars(_live().where(
            StoredFile.patient_id.in_({u.id for u in users}), StoredFile.category == Category.USER_AVATAR,
            StoredFile.target_type == TargetType.USER,
        ).order_by(*_NEWEST_FIRST)):
            found.setdefault(row.patient_id or 0, row)
    return found


def _page_size(per_page: int | None) -> int:
    config = current_app.config
    if per_page is None:
        return config["API_PAGE_SIZE"]
    return max(1, min(per_page, config["API_PAGE_SIZE_MAX"]))
