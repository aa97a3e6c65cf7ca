"""The Documents toolbar: a listing's search, filters, order and view, read from the URL.

The state lives in the query string (a GET form, so it works without JavaScript and a link
can be shared); what cannot be understood is left out with a sentence saying so, never an
error page.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import request, url_for
from flask_babel import gettext

from app.i18n import N_
from app.models import Category
from app.services.files import Kind, ListQuery, Sort, Source

#: The arguments the toolbar owns (a "Clear filters" link drops them, keeping the view).
ARGS = ("q", "kind", "category", "source", "from", "to", "sort")
VIEWS = ("list", "grid")

# English here (marked for the catalogue); `Toolbar.labels` translates them for the request.
KIND_LABELS = {Kind.PDF: N_("PDFs"), Kind.IMAGE: N_("Images and photos"), Kind.DOCUMENT: N_("Word documents"),
               Kind.SPREADSHEET: N_("Spreadsheets and CSV"), Kind.TEXT: N_("Text files")}
CATEGORY_LABELS = {Category.USER_DOCUMENT: N_("Documents"), Category.INTAKE_ATTACHMENT: N_("Visit files"),
                   Category.USER_CONSENT: N_("Consent forms")}
SORT_LABELS = {Sort.NEWEST: N_("Newest first"), Sort.OLDEST: N_("Oldest first"), Sort.NAME: N_("Name A–Z"),
               Sort.NAME_DESC: N_("Name Z–A"), Sort.SIZE: N_("Smallest first"), Sort.SIZE_DESC: N_("Largest first")}
SOURCE_LABELS = {Source.ME: N_("Uploaded by me"), Source.TEAM: N_("From my care team")}


@dataclass
class Toolbar:
    """What the page shows in its toolbar and passes to the listing."""

    query: ListQuery
    view: str = "list"
    values: dict[str, str] = field(default_factory=dict)  # the fields as typed, for the form
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    def url(self, **changes: str | None) -> str:
        """This page's address with its current state changed (None drops an argument; the
        page number always goes, as the listing changes)."""
        args = {k: v for k, v in request.args.items() if k != "page"} | changes
        kept: dict[str, Any] = {k: v for k, v in args.items() if v not in (None, "")}
        return url_for(request.endpoint or "documents.index", **(request.view_args or {}), **kept)

    @property
    def clear_url(self) -> str:
        """The listing unfiltered, in the same view."""
        return self.url(**dict.fromkeys(ARGS), view=self.view if self.view != "list" else None)

    def view_url(self, view: str) -> str:
        return self.url(view=view if view != "list" else None)

    @property
    def action_url(self) -> str:
        return url_for(request.endpoint or "documents.index", **(request.view_args or {}))

    @property
    def labels(self) -> dict[str, dict]:
        """The choices of each select, in the order shown."""
        return {name: {value: gettext(label) for value, label in table.items()}
                for name, table in (("kinds", KIND_LABELS), ("categories", CATEGORY_LABELS),
                                    ("sorts", SORT_LABELS), ("sources", SOURCE_LABELS))}


# One whole sentence per field (never a word put into a sentence: languages differ in both).
_NOT_A_CHOICE = {
    "category": N_("“%(value)s” is not a category this page knows, so it was left out."),
    "file type": N_("“%(value)s” is not a file type this page knows, so it was left out."),
    "source": N_("“%(value)s” is not a source this page knows, so it was left out."),
    "sort order": N_("“%(value)s” is not a sort order this page knows, so it was left out."),
}
_NOT_A_DAY = {
    "from": N_("The from date “%(value)s” is not a date (like 2026-03-14), so it was left out."),
    "to": N_("The to date “%(value)s” is not a date (like 2026-03-14), so it was left out."),
}


def _choice(raw: str, choices: type, what: str, notes: list[str]):
    if not raw:
        return None
    try:
        return choices(raw)
    except ValueError:
        notes.append(gettext(_NOT_A_CHOICE[what], value=raw[:40]))
        return None


def _day(raw: str, what: str, notes: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        notes.append(gettext(_NOT_A_DAY[what], value=raw[:40]))
        return None


def read(args: Mapping[str, str], *, source: bool = False, categories: bool = True) -> Toolbar:
    """The toolbar's state from a page's query string.

    Args:
        source: the page offers "Uploaded by me / From my care team" (the patient's page).
        categories: the page lists several categories, so it offers that filter.
    """
    notes: list[str] = []
    values = {name: (args.get(name) or "").strip()[:200] for name in ARGS}
    since = _day(values["from"], "from", notes)
    until = _day(values["to"], "to", notes)
    if since and until and since > until:
        notes.append(gettext("The from date was after the to date; they were swapped."))
        since, until = until, since
        values["from"], values["to"] = since.isoformat(), until.isoformat()
    category = _choice(values["category"], Category, "category", notes) if categories else None
    if category is not None and category not in CATEGORY_LABELS:
        notes.append(gettext("That category is not listed on this page, so it was left out."))
        category = None
    query = ListQuery(
        q=values["q"],
        kind=_choice(values["kind"], Kind, "file type", notes),
        category=category,
        source=_choice(values["source"], Source, "source", notes) if source else None,
        since=since, until=until,
        sort=_choice(values["sort"], Sort, "sort order", notes) or Sort.NEWEST,
    )
    view = args.get("view") or "list"
    return Toolbar(query=query, view=view if view in VIEWS else "list", values=values, notes=notes)
