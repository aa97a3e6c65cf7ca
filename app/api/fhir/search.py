"""FHIR search parameters to service arguments: dates with prefixes, tokens, references, paging.

FHIR's rules, as far as this door supports them: a parameter repeated is AND, a comma inside
one value is OR; a date is a range as precise as it is written (`2024` is the whole year), and
a prefix (ge, le, gt, lt, eq) compares against that range; unknown parameters are ignored
(search.html: servers SHALL ignore them), a known one with a malformed value or an
unsupported modifier is a 400 `invalid`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from werkzeug.datastructures import MultiDict

from app.api import params
from app.api.fhir.resources import (
    CATEGORY_SYSTEM,
    CHART_NUMBER_SYSTEM,
    CLINICAL_NOTE,
    LOINC,
    TYPE_OF,
    US_CORE_CATEGORY,
)
from app.errors import BadRequest
from app.models import Category
from app.services.document_search import DocumentQuery

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_PREFIXES = ("eq", "ge", "le", "gt", "lt")
#: Clinical notes in US Core's sense: what staff add to a chart as a document or a visit file.
CLINICAL_CATEGORIES = frozenset({Category.USER_DOCUMENT, Category.INTAKE_ATTACHMENT})
STATUSES = ("current", "entered-in-error")


@dataclass(frozen=True)
class Paging:
    count: int  # rows per page; 0 asks for the total only
    page: int


def values(args: MultiDict, name: str, *, modifiers: tuple[str, ...] = ()) -> list[str]:
    """Every value of `name` (also `name:<modifier>` for the modifiers allowed). Raises
    BadRequest for any other modifier of a known parameter."""
    found = []
    for key, value in args.items(multi=True):
        base, _, modifier = key.partition(":")
        if base != name:
            continue
        if modifier and modifier not in modifiers:
            raise BadRequest(f"The modifier :{modifier} of {name} is not supported.")
        found.append(value)
    return found


def paging(args: MultiDict, maximum: int, default: int) -> Paging:
    """`_count` (0..maximum; more is capped, as FHIR lets a server) and `_page` (from 1)."""
    count_text = args.get("_count")
    count = default
    if count_text not in (None, ""):
        if not params.is_number(count_text):
            raise BadRequest("_count must be a whole number from 0.")
        count = min(int(count_text), maximum)
    return Paging(count=count, page=params.positive(args.get("_page"), "_page") or 1)


def oldest_first(args: MultiDict) -> bool:
    """`_sort=date` (oldest first) or `_sort=-date` (newest first, the default)."""
    value = args.get("_sort")
    if value in (None, "", "-date"):
        return False
    if value == "date":
        return True
    raise BadRequest("_sort supports date and -date.")


def date_range(text: str, name: str) -> tuple[datetime, datetime]:
    """The [start, end) a FHIR date or dateTime stands for, in UTC. Raises BadRequest."""
    match = _DATE.match(text)
    if match is None:
        raise BadRequest(f"{name} must be a FHIR date, e.g. 2024, 2024-05, 2024-05-17 or 2024-05-17T09:30:00Z.")
    year, month, day, hour, minute, second, zone = match.groups()
    if hour is not None and zone is None:
        raise BadRequest(f"{name}: a time needs its time zone (Z or ±hh:mm).")
    try:
        start = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                         int(second or 0), tzinfo=UTC)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}: {text!r} is not a real date.") from None
    if month is None:
        end = start.replace(year=start.year + 1) if start.year < 9999 else datetime.max.replace(tzinfo=UTC)
    elif day is None:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    elif hour is None:
        end = start + timedelta(days=1)
    else:
        end = start + timedelta(seconds=1 if second is not None else 60)
    return start, end


def date_bounds(texts: list[str], name: str) -> tuple[datetime | None, datetime | None]:
    """The AND of several prefixed dates as one [since, until) window (either end open)."""
    since: datetime | None = None
    until: datetime | None = None
    for text in texts:
        prefix = text[:2] if text[:2] in _PREFIXES else ""
        start, end = date_range(text[len(prefix):], name)
        low, high = {"": (start, end), "eq": (start, end), "ge": (start, None), "gt": (end, None),
                     "le": (None, end), "lt": (None, start)}[prefix]
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return since, until


def token(text: str) -> tuple[str | None, str]:
    """`system|code`, `|code` (no system) or `code` (any system): (system or None, code)."""
    if "|" in text:
        system, _, code = text.partition("|")
        return system, code
    return None, text


def reference_id(text: str, kind: str) -> str:
    """The id in `123`, `Patient/123` or `<base>/Patient/123` (reference search), as text."""
    text = text.strip()
    if "/" in text:
        head, _, ident = text.rstrip("/").rpartition("/")
        if head.rsplit("/", 1)[-1] != kind:
            raise BadRequest(f"The reference must be to a {kind}, like {kind}/123.")
        return ident
    return text


def document_query(args: MultiDict, staff: bool) -> DocumentQuery:
    """category, type, date and status of a DocumentReference search, plus _sort."""
    categories: frozenset[Category] | None = None
    clinical: bool | None = None
    for value in values(args, "category"):
        found, wants_clinical = _categories(value)
        categories = found if categories is None else categories & found
        clinical = clinical or wants_clinical or None
    for value in values(args, "type"):
        typed = frozenset(c for text in value.split(",") for c in _typed(*token(text)))
        categories = typed if categories is None else categories & typed
    since, until = date_bounds(values(args, "date"), "date")
    current, deleted = True, staff
    statuses = values(args, "status")
    for value in statuses:
        wanted = {v.strip() for v in value.split(",")}
        current, deleted = current and "current" in wanted, deleted and "entered-in-error" in wanted
    return DocumentQuery(categories=categories, clinical=clinical, since=since, until=until, current=current,
                         deleted=deleted, oldest_first=oldest_first(args))


def _categories(value: str) -> tuple[frozenset[Category], bool]:
    """The categories one `category` value (OR of comma-separated tokens) matches, and
    whether it asks for clinical notes only (US Core's clinical-note, which nothing else asks)."""
    found: set[Category] = set()
    clinical_only = True
    for text in value.split(","):
        system, code = token(text)
        if system in (None, "", CATEGORY_SYSTEM) and code in {c.value for c in Category}:
            found.add(Category(code))
            clinical_only = False
        if system in (None, "", US_CORE_CATEGORY) and code == CLINICAL_NOTE:
            found |= CLINICAL_CATEGORIES
    # "clinical-note" alone means staff additions; mixed with Chartbox codes, the codes widen it.
    return frozenset(found), clinical_only and bool(found)


def _typed(system: str | None, code: str) -> set[Category]:
    if system not in (None, "", LOINC):
        return set()
    return {category for category, (loinc, _) in TYPE_OF.items() if loinc == code}


def chart_number(args: MultiDict) -> str | None:
    """`identifier=[system|]value` of a Patient search; a foreign system matches nobody ('')."""
    found: str | None = None
    for value in values(args, "identifier"):
        system, code = token(value)
        code = code if system in (None, "", CHART_NUMBER_SYSTEM) else ""
        if found is not None and found != code:
            return ""
        found = code
    return found


def birth_dates(args: MultiDict) -> tuple[date | None, date | None]:
    """`birthdate` (prefixed, repeatable) as inclusive first and last days."""
    since, until = date_bounds(values(args, "birthdate"), "birthdate")
    return (since.date() if since else None,
            (until - timedelta(microseconds=1)).date() if until and until.year > 1 else None)
