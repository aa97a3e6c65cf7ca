"""How files, sizes and dates look on the pages (template globals and filters)."""
from __future__ import annotations

from datetime import date, datetime

from flask import Flask, has_request_context, request
from flask_babel import format_date, format_datetime, get_locale, gettext, pgettext
from flask_login import current_user

from app.models import Action, StoredFile, User, VisitStatus
from app.services import access, files
from app.services.validation import (
    ACCEPTED_EXTENSIONS,
    CSV,
    IMAGES,
    TEXT,
    TYPES,
    WEB_IMAGES,
    describe,
    name_extension,
)
from app.urls import view_url
from app.web.navigation import here, page_url
from app.web.script_strings import script_catalogue

# Boxes the pages ask for: each a stored rendition size (RENDITION_SIZES), so a page is always
# answered from the cache as it is, never by a downscale.
THUMB_BOX = "128x128"  # a row's thumbnail (shown at 96 CSS px); the grid's cards pick larger
# The sides a thumbnail's srcset offers (`w` descriptors): the browser takes the smallest that
# covers the box it lays the image out in (`sizes="auto"`), so a 96 px row thumbnail on a 2x
# screen loads 320 and a grid card 640, each a stored rendition as it is.
THUMB_SIDES = (128, 320, 640)
AVATAR_BOX = "128x128"  # shown at 32-96 CSS px; one rendition with the thumbnail
PAGE_BOX = "1280x1280"  # the in-page viewer's PDF pages (static/chartbox.js says the same)
VIEWER_PAGES = 20  # the in-page viewer shows at most this many PDF pages
# The media types too, for iPhones: with `image/heic` listed, iOS offers the photo library and
# sends a photo as it was taken (HEIC) rather than converting it.
UPLOAD_ACCEPT = ",".join([*(f".{ext}" for ext in ACCEPTED_EXTENSIONS), "image/heic", "image/heif"])

# A short label and a colour family per media type, for the type badge.
_KINDS = {
    "application/pdf": ("PDF", "pdf"),
    "image/png": ("PNG", "image"),
    "image/jpeg": ("JPG", "image"),
    "image/heic": ("HEIC", "image"),
    "text/plain": ("TXT", "text"),
    "text/csv": ("CSV", "sheet"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("DOC", "doc"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("XLS", "sheet"),
}


def human_size(size: int | None) -> str:
    """1536 -> '1.5 KB' (decimal-looking units people read on phones and in Finder)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            if unit == "bytes":
                return gettext("%(num)d bytes", num=int(value))
            return _decimal(f"{value:.1f} {unit}".replace(".0 ", " "))
        value /= 1024
    return gettext("%(num)d bytes", num=size)


def _decimal(text: str) -> str:
    """'1.5 MB' as the page's language writes it ('1,5 MB' in Spanish)."""
    locale = get_locale()
    if locale is None or locale.language == "en":
        return text
    return text.replace(".", locale.number_symbols.get("latn", locale.number_symbols).get("decimal", "."))


def human_date(moment: date | datetime | None) -> str:
    """'12 Mar 2026' (UTC; '12 mar 2026' in Spanish: the month as the page's language names it)."""
    return format_date(moment, "d MMM y") if moment else ""


def human_datetime(moment: datetime | None) -> str:
    """'12 Mar 2026, 14:05 UTC'."""
    return format_datetime(moment, "d MMM y, HH:mm 'UTC'") if moment else ""


def iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def kind(row: StoredFile) -> tuple[str, str]:
    """(badge text, colour family) for a file's type."""
    return _KINDS.get(row.media_type, (row.ext.upper()[:4] or "FILE", "text"))


def type_name(row: StoredFile) -> str:
    """'PDF document', 'JPEG image', 'Word document' (no article, first letter capital)."""
    name = describe(row.media_type).split(" ", 1)[-1]  # "un documento PDF" too: one word of article
    return name[:1].upper() + name[1:]


def name_parts(row: StoredFile) -> tuple[str, str]:
    """(stem, ".ext"): what the rename field shows and what stays fixed after it. The ending
    is the name's own when it fits the type ("photo.jpeg"), else the file's."""
    ext = name_extension(row.name)
    if ext in TYPES[row.media_type][0]:
        return row.name[: -len(ext) - 1], row.name[-len(ext) - 1:]
    return row.name, f".{row.ext}"


def thumb_url(row: StoredFile) -> str | None:
    """A signed thumbnail link for images and PDFs; None for types shown as a badge."""
    if row.media_type in IMAGES:
        return view_url(row, _viewer(), size=THUMB_BOX)
    if row.is_pdf:
        return view_url(row, _viewer(), size=THUMB_BOX, preview=1)
    return None


def thumb_srcset(row: StoredFile) -> str | None:
    """The thumbnail at each of THUMB_SIDES, for `srcset`; None where thumb_url is None."""
    if row.media_type not in IMAGES and not row.is_pdf:
        return None
    preview = 1 if row.is_pdf else None
    return ", ".join(f"{view_url(row, _viewer(), size=f'{side}x{side}', preview=preview)} {side}w"
                     for side in THUMB_SIDES)


def open_url(row: StoredFile) -> str:
    """What opening a file shows (the viewer, or a new tab): the file itself, except a photo
    only Safari can display (HEIC), which opens as a large PNG rendition. Downloads stay the original."""
    if row.media_type in IMAGES - WEB_IMAGES:
        return view_url(row, _viewer(), size=PAGE_BOX)
    return view_url(row, _viewer())


def download_url(row: StoredFile) -> str:
    return view_url(row, _viewer()) + "&download=1"


def jpeg_download_url(row: StoredFile) -> str | None:
    """For a photo only Safari opens (HEIC): the whole photo as a JPEG anyone's computer can."""
    if row.media_type in IMAGES - WEB_IMAGES:
        return view_url(row, _viewer()) + "&format=jpeg&download=1"
    return None


def _viewer() -> User | None:
    """Links on a page are minted for the signed-in user (their views are theirs)."""
    return current_user._get_current_object() if current_user.is_authenticated else None


def viewer_kind(row: StoredFile) -> str | None:
    """How the in-page viewer shows it: "pdf" (rendered pages), "image", "csv" (a table),
    "text"; None for what only downloads (Word, Excel)."""
    if row.is_pdf:
        return "pdf"
    if row.media_type in IMAGES:
        return "image"
    return {CSV: "csv", TEXT: "text"}.get(row.media_type)


def viewable(row: StoredFile) -> bool:
    """Whether the in-page viewer can show it."""
    return viewer_kind(row) is not None


def can(row: StoredFile, action: str) -> bool:
    """Whether the signed-in user may take `action` on the file (decides which buttons show)."""
    return current_user.is_authenticated and access.can(current_user, row, Action(action))


def viewer_is_staff() -> bool:
    return bool(current_user.is_authenticated and current_user.is_staff)


def mine(row: StoredFile) -> bool:
    """Uploaded by the signed-in user."""
    return bool(current_user.is_authenticated and row.creator_id == current_user.id)


def uploader(row: StoredFile) -> str:
    if current_user.is_authenticated and row.creator_id == current_user.id:
        return gettext("You")
    return row.creator.full_name


def needs_reason(row: StoredFile) -> bool:
    """Staff removing a clinical record say why (the delete form asks)."""
    return bool(current_user.is_authenticated and current_user.is_staff and access.is_clinical(row))


def avatar_url(user: User) -> str | None:
    cache = _avatars()
    if user.id not in cache:
        cache[user.id] = files.current_avatar(user)
    row = cache[user.id]
    return view_url(row, _viewer(), size=AVATAR_BOX) if row else None


def preload_avatars(users: list[User]) -> None:
    """Find the avatars of everyone a page lists in one query, not one per person (N+1)."""
    found = files.current_avatars(users)
    _avatars().update({user.id: found.get(user.id) for user in users})


def _avatars() -> dict[int, StoredFile | None]:
    """This request's avatar lookups (kept in the request: `g` may outlive it in tests)."""
    if not has_request_context():
        return {}
    return request.environ.setdefault("chartbox.avatars", {})


def initials(user: User) -> str:
    parts = [p for p in user.full_name.replace(".", " ").split() if p[:1].isalpha()]
    letters = (parts[0][0] + (parts[-1][0] if len(parts) > 1 else "")) if parts else user.username[:1]
    return letters.upper()


def visit_status(status: str) -> str:
    """A visit's status (VisitStatus value) as a person reads it."""
    labels = {VisitStatus.OPEN: pgettext("visit", "Open"), VisitStatus.COMPLETED: pgettext("visit", "Completed"),
              VisitStatus.CANCELLED: pgettext("visit", "Cancelled")}
    return labels.get(VisitStatus(status), status)


def register_display(app: Flask) -> None:
    """Make the helpers above available to every template."""
    app.jinja_env.filters.update(human_size=human_size, human_date=human_date, human_datetime=human_datetime, iso=iso)
    app.jinja_env.globals.update(
        file_kind=kind, type_name=type_name, name_parts=name_parts, viewer_kind=viewer_kind, thumb_url=thumb_url,
        thumb_srcset=thumb_srcset,
        open_url=open_url, download_url=download_url, jpeg_download_url=jpeg_download_url, viewable=viewable,
        can=can, uploader=uploader,
        initials=initials, avatar_url=avatar_url, needs_reason=needs_reason, viewer_is_staff=viewer_is_staff,
        mine=mine, VIEWER_PAGES=VIEWER_PAGES, visit_status=visit_status, VISIT_STATUSES=list(VisitStatus),
        UPLOAD_ACCEPT=UPLOAD_ACCEPT, here=here, page_url=page_url,
    )

    @app.context_processor
    def header_context() -> dict:
        locale = get_locale()
        found: dict = {"current_locale": locale.language if locale else "en", "js_strings": script_catalogue()}
        if current_user.is_authenticated:
            found["header_avatar"] = avatar_url(current_user)
        return found
