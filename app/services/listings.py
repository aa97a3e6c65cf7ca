"""Listings: which files of a chart or visit an actor sees, and users' current avatars.

Every listing keeps to the actor's scope (a patient sees only their own chart and what is
visible to them), orders newest first and writes its audit event. Offered through files.py,
which the doors call.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, TargetType, User, Visit
from app.services import access, audit
from app.services.audit import Origin
from app.services.paging import Page, paginate
from app.services.targets import Target


def _live() -> Select:
    return select(StoredFile).where(StoredFile.deleted_at.is_(None))


def list_files(actor: User, target: Target | None = None, category: Category | None = None,
               include_shared: bool = False, page: int = 1, per_page: int | None = None,
               origin: Origin | None = None) -> Page:
    """The files of one chart (or one visit) that the actor may see, newest first.

    Args:
        target: the chart; the actor's own when None. A visit target lists that visit's files.
        category: only this category (all when None).
        include_shared: also the visit attachments and consents staff made visible to this
            patient (wherever they are filed).
        page, per_page: 1-based page; per_page defaults to API_PAGE_SIZE, capped at the max.
    Raises:
        NotFound: the chart is outside the actor's reach.
    """
    query = _listing(actor, target or Target.chart(actor), category, include_shared)
    listing = paginate(query, page, _page_size(per_page), *_NEWEST_FIRST)
    _audit_listing(actor, origin, target or Target.chart(actor), len(listing.items), total=listing.total,
                   page=listing.page, category=category.value if category else None)
    return listing


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
              StoredFile.deleted_at.is_(None), *_visibility(actor))
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
    query = _live().where(StoredFile.account_id == target.account_id, condition, *_visibility(actor))
    if actor.is_patient:  # a patient sees their own chart only; avatars of others never
        query = query.where(StoredFile.patient_id == actor.id)
    # Each row names its visit (pages say "From visit: …", the API dialects give its id): loaded
    # in the same statement, not one SELECT per visit (N+1).
    return query.options(joinedload(StoredFile.visit))


def _visibility(actor: User) -> tuple[ColumnElement[bool], ...]:
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
