"""The patient directory: finding a clinic's patients, and what tells two of them apart.

A front desk types what it has — "Moreno Alice", "alic mor", a date of birth read off a card,
a chart number — and expects the one patient. Namesakes are told apart by date of birth and
chart number, which the directory shows and searches.
"""
from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import ColumnElement, or_, select

from app.errors import BadRequest, Conflict
from app.extensions import db
from app.models import Action, Role, User
from app.models.base import utcnow
from app.services import access, audit
from app.services.audit import Origin
from app.services.paging import Page, paginate

MAX_SEARCH = 100  # characters of a search looked at; the rest is ignored
_WORDS = re.compile(r"[\s,;]+")  # "Moreno, Alice" is two words
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_CHART_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")


def find_patients(actor: User, search: str = "", page: int = 1, per_page: int = 25) -> Page:
    """One page of the patients of the actor's clinic matching `search`, by name then id.

    The search is split into words (spaces, commas); a patient matches when every word does,
    in any order. A date word — ISO `1984-03-02` or US `03/02/1984` — matches the date of birth
    exactly; any other word matches part of the full name, username, email or chart number,
    ignoring case (typed `%` and `_` are plain characters). Only the first MAX_SEARCH characters
    count; an empty search lists every patient.

    Args:
        actor: the signed-in staff member; only their clinic's patients are ever found.
        page, per_page: 1-based page and its size (rows).
    Returns:
        A Page of User rows with the total count.
    Raises:
        Forbidden: the actor is not staff (a provider or an admin).
    """
    access.check_directory(actor)
    query = select(User).where(User.account_id == actor.account_id, User.role == Role.PATIENT)
    words: dict[str, str] = {}  # one condition per word, whatever its case
    for word in _WORDS.split(search.strip()[:MAX_SEARCH]):
        if word:
            words.setdefault(word.lower(), word)
    for word in words.values():
        query = query.where(_matches(word))
    return paginate(query, page, per_page, User.full_name, User.id)


def search_patients(actor: User, *, name: str = "", born_from: date | None = None,
                    born_until: date | None = None, chart_number: str | None = None, page: int = 1,
                    per_page: int = 25, origin: Origin | None = None) -> Page:
    """One page of the patients the actor may see matching every criterion given, by name then id.

    For doors whose clients search by field (FHIR's Patient search) rather than type one box.
    Staff search their clinic's patients; a patient finds only themself (when they match), so
    the search never tells a patient who else exists.

    Args:
        name: every word must be part of the full name, ignoring case ('' matches all).
        born_from, born_until: date of birth on or after / on or before (either may be None).
        chart_number: exactly this chart number ('' matches nobody: no chart has an empty one).
        page, per_page: 1-based page and its size; per_page 0 counts only.
    Returns a Page of User rows with the total; audited as a listing when `origin` is given.
    """
    query = select(User).where(User.account_id == actor.account_id, User.role == Role.PATIENT)
    if not actor.is_staff:
        query = query.where(User.id == actor.id)
    for word in dict.fromkeys(w.lower() for w in _WORDS.split(name.strip()[:MAX_SEARCH]) if w):
        query = query.where(User.full_name.ilike(_like(word), escape="\\"))
    if born_from is not None:
        query = query.where(User.birth_date >= born_from)
    if born_until is not None:
        query = query.where(User.birth_date <= born_until)
    if chart_number is not None:
        query = query.where(User.chart_number == chart_number)
    found = paginate(query, page, max(1, per_page), User.full_name, User.id)
    if per_page <= 0:
        found = Page(items=[], total=found.total, page=found.page, per_page=1)
    if origin is not None:
        audit.record_read(Action.LIST, origin, actor=actor, account_id=actor.account_id,
                          patients=len(found.items), total=found.total, search="patients")
    return found


def open_patient(actor: User, patient_id: int, origin: Origin | None = None) -> User:
    """A patient the actor may see (accounts.get_patient), audited as a listing of their record.

    Raises NotFound for anyone else (unknown, not a patient, another clinic, another patient).
    """
    from app.services.accounts import get_patient  # accounts sits above the directory

    patient = get_patient(actor, patient_id)
    if origin is not None:
        audit.record_read(Action.LIST, origin, actor=actor, account_id=patient.account_id, patient_id=patient.id,
                          search="patient")
    return patient


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matches(word: str) -> ColumnElement[bool]:
    born = parse_date(word)
    if born is not None:
        return User.birth_date == born
    like = _like(word)
    return or_(*(column.ilike(like, escape="\\")
                 for column in (User.full_name, User.username, User.email, User.chart_number)))


def parse_date(word: str) -> date | None:
    """The date a search word spells (`1984-03-02` or US `03/02/1984`), or None (also for an
    impossible one such as 02/30/1984, which is then searched for as text and finds nobody)."""
    iso, us = _ISO_DATE.match(word), _US_DATE.match(word)
    try:
        if iso:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if us:
            return date(int(us[3]), int(us[1]), int(us[2]))
    except ValueError:
        return None
    return None


def check_birth_date(birth_date: date | None) -> date | None:
    """A date of birth as stored. Raises BadRequest for one in the future."""
    # Today somewhere on Earth (UTC+14 is the earliest): a baby born this morning in Kiribati
    # is not refused because the server's clock is still on yesterday.
    if birth_date is not None and birth_date > (utcnow() + timedelta(hours=14)).date():
        raise BadRequest("The date of birth cannot be in the future.")
    return birth_date


def check_chart_number(account_id: int, role: Role, chart_number: str | None) -> str | None:
    """A new patient's chart number as stored (None when blank).

    Raises:
        BadRequest: malformed (1 to 32 letters, digits and -, starting with a letter or digit),
            or the user is not a patient.
        Conflict: another user of the clinic `account_id` has it (other clinics' do not count).
    """
    chart_number = (chart_number or "").strip() or None
    if chart_number is None:
        return None
    if not _CHART_NUMBER.match(chart_number):
        raise BadRequest("Chart numbers use letters, digits and - (1 to 32 characters, "
                         "starting with a letter or digit).")
    if role != Role.PATIENT:
        raise BadRequest("Only patients have a chart number.")
    taken = db.session.scalar(select(User.id).where(User.account_id == account_id,
                                                    User.chart_number == chart_number))
    if taken is not None:
        raise Conflict(chart_number_taken(chart_number))
    return chart_number


def chart_number_taken(chart_number: str) -> str:
    return f"The chart number “{chart_number}” is already used by another patient of this clinic."
