"""A patient's whole record as one ZIP, streamed: their right of access, in one download.

Every live file of the chart the actor may see (a patient: what is visible to them; staff:
everything but profile pictures, which are no record), in a folder per category and per visit,
with `manifest.csv` (path, name, date, uploader, type, size, sha256) and `index.html` (the same,
for people, linking each file). The archive is stored, not compressed (the files are mostly
PDFs and photos, compressed already), so its exact length is known before the first byte:
zipstream-ng builds it as it is sent, one chunk at a time, never whole in memory or on disk.

Each file is read through viewing.VerifiedStream: a blob whose bytes no longer match its
sha256 stops the transfer (the client sees a short download, never a complete archive with a
wrong file in it), logged and audited as a streamed view would be. A blob already missing, or of
another size than its row's, when the export starts is left out and listed as unavailable
(logged for the administrator, a wrong size also audited), so one lost file never keeps a
patient from the rest.

Accounted for before the first byte: one audit event per file (`export`, so each file's access
history names who took it home), all with the request's id, committed together.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from zipstream import ZipStream

from app.errors import NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, User, Visit
from app.models.base import utcnow
from app.services import access, audit, transaction, viewing
from app.services.audit import Origin
from app.services.files import damaged, download_name, missing_blob
from app.services.validation import describe
from app.storage import BlobMissing, get_storage

_FOLDERS = {Category.USER_DOCUMENT: "Documents", Category.USER_CONSENT: "Consents",
            Category.INTAKE_ATTACHMENT: "Visits"}
_MANIFEST_COLUMNS = ("path", "name", "category", "visit", "uploaded_at", "uploaded_by", "type", "size", "sha256")


@dataclass
class Entry:
    """One file of the archive: where it goes, and what the manifest says of it."""

    row: StoredFile
    path: str
    available: bool = True


@dataclass
class Export:
    """An archive ready to send: its name, exact size and the chunks to send."""

    name: str
    size: int
    chunks: Iterator[bytes] = field(repr=False)


def export_chart(actor: User, origin: Origin, patient: User) -> Export:
    """The patient's records the actor may see, as a ZIP to stream (see the module docstring).

    Raises NotFound when the chart is out of the actor's reach (as every door does).
    """
    if not patient.is_patient or not access.in_scope(actor, patient.id, patient.account_id):
        raise NotFound("No such user.")
    rows = _records(actor, patient)
    entries = _place(rows)
    storage = get_storage()
    for entry in entries:
        try:
            stored = storage.size(entry.row.storage_key)
        except BlobMissing:
            entry.available = False
            missing_blob(entry.row)  # logged: `chartbox files check` names it too
            continue
        if stored != entry.row.size:  # damaged: logged and audited, and left out like a missing one
            entry.available = False
            damaged(entry.row, origin, f"the blob has {stored} bytes, the row says {entry.row.size}", actor)
    archive = ZipStream(sized=True)
    when = utcnow()
    for entry in entries:
        if entry.available:
            archive.add(viewing.checked_chunks(entry.row, origin), entry.path, size=entry.row.size)
    archive.add(_manifest(entries), "manifest.csv")
    archive.add(_index(patient, entries, when), "index.html")
    audit.record_each(Action.EXPORT, origin, actor=actor,
                      files=[(entry.row, {"path": entry.path}) for entry in entries if entry.available])
    if not any(entry.available for entry in entries):  # an empty export is still an access
        audit.record(Action.EXPORT, origin, actor=actor, account_id=patient.account_id,
                     patient_id=patient.id, files=0)
    transaction.commit()
    name = f"Chartbox records – {patient.full_name} – {when:%Y-%m-%d}.zip"
    return Export(name=name, size=len(archive), chunks=iter(archive))


def _records(actor: User, patient: User) -> list[StoredFile]:
    """The chart's live records the actor may see, oldest first (the order a record is read)."""
    query = (select(StoredFile)
             .where(StoredFile.account_id == patient.account_id, StoredFile.patient_id == patient.id,
                    StoredFile.deleted_at.is_(None), StoredFile.category != Category.USER_AVATAR.value)
             .options(joinedload(StoredFile.visit))
             .order_by(StoredFile.created_at, StoredFile.id))
    if actor.is_patient:
        query = query.where(StoredFile.visible.is_(True))
    return [row for row in db.session.scalars(query) if access.can(actor, row, Action.VIEW)]


def _place(rows: list[StoredFile]) -> list[Entry]:
    """Each file's path in the archive: its folder, and its name made unique in that folder."""
    taken: set[str] = set()
    entries = []
    for row in rows:
        folder = _FOLDERS.get(Category(row.category), "Other")
        if row.visit is not None:
            folder = f"Visits/{_visit_folder(row.visit)}"
        path = _unique(f"{folder}/{_safe(download_name(row))}", taken)
        entries.append(Entry(row, path))
    return entries


def _visit_folder(visit: Visit) -> str:
    label = f"{visit.created_at:%Y-%m-%d}"
    reason = _safe(visit.reason or "")
    return f"{label} {reason}"[:80].rstrip() if reason else label


def _safe(name: str) -> str:
    """A name every unzip tool keeps as one plain file name (no folders, no reserved marks)."""
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
    return name or "file"


def _unique(path: str, taken: set[str]) -> str:
    """`path`, or `stem (2).ext`, `stem (3).ext`… when a file of that name is already there
    (compared without case: Windows and macOS unzip into case-blind folders)."""
    stem, dot, ext = path.rpartition(".")
    if not dot or "/" in ext:
        stem, dot, ext = path, "", ""
    chosen, n = path, 1
    while chosen.lower() in taken:
        n += 1
        chosen = f"{stem} ({n}){dot}{ext}"
    taken.add(chosen.lower())
    return chosen


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP's CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _facts(entry: Entry) -> dict[str, str]:
    row = entry.row
    return {
        "path": entry.path if entry.available else "(unavailable: an administrator has been told)",
        "name": row.name, "category": row.category,
        "visit": _visit_folder(row.visit) if row.visit is not None else "",
        "uploaded_at": _iso(row.created_at), "uploaded_by": row.creator.full_name if row.creator else "",
        "type": describe(row.media_type), "size": str(row.size), "sha256": row.sha256,
    }


def _manifest(entries: list[Entry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_MANIFEST_COLUMNS)
    for entry in entries:
        facts = _facts(entry)
        writer.writerow([_cell(facts[column]) for column in _MANIFEST_COLUMNS])
    return out.getvalue().encode("utf-8-sig")  # the BOM tells Excel it is UTF-8


def _index(patient: User, entries: list[Entry], when: datetime) -> bytes:
    rows = []
    for entry in entries:
        facts = _facts(entry)
        name = (f'<a href="{escape(quote(entry.path))}">{escape(entry.row.name)}</a>' if entry.available
                else f"{escape(entry.row.name)} <em>(unavailable)</em>")
        rows.append(f"<tr><td>{name}</td><td>{escape(facts['visit'] or _FOLDERS.get(Category(entry.row.category), ''))}"
                    f"</td><td>{escape(facts['uploaded_at'][:16].replace('T', ' '))} UTC</td>"
                    f"<td>{escape(facts['uploaded_by'])}</td><td>{escape(facts['type'])}</td>"
                    f"<td>{entry.row.size:,} bytes</td></tr>")
    count = sum(entry.available for entry in entries)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Records of {escape(patient.full_name)}</title>
<style>body{{font:15px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2939}}table{{border-collapse:collapse}}
td,th{{padding:.35rem .7rem;border-bottom:1px solid #d0d5dd;text-align:left}}</style></head>
<body><h1>Records of {escape(patient.full_name)}</h1>
<p>{count} file{"" if count == 1 else "s"}, taken from Chartbox on {when:%d %B %Y at %H:%M} UTC.
<code>manifest.csv</code> lists the same with each file's SHA-256, to check a copy against.</p>
<table><thead><tr><th>File</th><th>Where</th><th>Uploaded</th><th>By</th><th>Type</th><th>Size</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
""".encode()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

