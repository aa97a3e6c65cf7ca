"""Patients' pages (Documents, Visits, Profile) and the file actions every chart page posts to.

Each view parses the request, calls one file-service function and renders the result; the
access rules (who may see, rename, delete or share) are the service's, never decided here.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, g, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required

from app.api import params
from app.errors import BadRequest, InvalidUpload, TooLarge, too_many_files
from app.http import wants_json
from app.models import Action, Category, TargetType
from app.services import audit, files
from app.services.files import Target
from app.services.paging import Page
from app.web import toolbar
from app.web.display import needs_reason
from app.web.forms import ConfirmForm, DeleteForm, RenameForm, UploadForm, VisibilityForm
from app.web.navigation import back, here, page_number, safe_next

bp = Blueprint("documents", __name__)


def upload_form(category: Category, target_type: TargetType, target_id: str | int) -> UploadForm:
    """An upload form aimed at one chart (or visit), coming back to the current page."""
    form = UploadForm(formdata=None)
    form.category.data, form.target_type.data = category.value, target_type.value
    form.target_id.data, form.next.data = str(target_id), here()
    return form


def visit_groups(patient) -> list[tuple]:
    """(visit, its attachments, an upload form for it) for each of the patient's visits."""
    return [
        (visit, Page.whole(rows), upload_form(Category.INTAKE_ATTACHMENT, TargetType.VISIT, visit.public_id))
        for visit, rows in files.list_visits_with_files(current_user, patient, g.origin)
    ]


#: The flash category of a delete's message: the page renders it with an Undo button.
UNDO = "undo"


def page_size() -> int:
    return current_app.config["WEB_PAGE_SIZE"]


@bp.get("/documents")
@login_required
def index():
    """A patient's documents and what their care team made visible to them, newest first;
    the toolbar searches, filters and sorts them (its state in the query string)."""
    if current_user.is_staff:
        return redirect(url_for("chart.patients"))
    bar = toolbar.read(request.args, source=True)
    listing = files.list_files(current_user, Target.chart(current_user), Category.USER_DOCUMENT,
                               include_shared=True, page=page_number(), per_page=page_size(), origin=g.origin,
                               query=bar.query)
    return render_template(
        "documents.html", listing=listing, tab="documents", bar=bar,
        upload=upload_form(Category.USER_DOCUMENT, TargetType.USER, current_user.id),
    )


@bp.get("/documents/visits")
@login_required
def visits():
    """The attachments of the patient's own visits, one group per visit."""
    if current_user.is_staff:
        return redirect(url_for("chart.patients"))
    return render_template("patient_visits.html", groups=visit_groups(current_user), tab="visits")


@bp.post("/documents/upload")
@login_required
def upload():
    """Store one or several files; JSON per file for the script, else messages and a redirect."""
    form = UploadForm()
    json_wanted = wants_json()
    category = files.parse_category(form.category.data)
    target = files.resolve_target(current_user, *params.target(form.target_type.data, form.target_id.data))
    chosen = [f for f in request.files.getlist(form.files.name) if f and f.filename]
    most = current_app.config["UPLOAD_MAX_FILES_PER_REQUEST"]
    if len(chosen) > most:  # (far more never get this far: MAX_FORM_PARTS stops the parser)
        raise TooLarge(too_many_files(most))
    if not chosen:
        if json_wanted:
            raise BadRequest(gettext("Choose at least one file to upload."))
        flash(gettext("Choose at least one file to upload."), "error")
        return back(form.next.data)
    results = []
    for item in chosen:
        try:
            row = files.upload(current_user, g.origin, item.stream, item.filename, category, target)
        except (InvalidUpload, TooLarge) as err:  # per file: the others still go in
            results.append({"name": item.filename, "ok": False, "error": err.message})
        else:
            results.append({"name": row.name, "ok": True, "id": row.public_id})
    if json_wanted:
        failed = [r for r in results if not r["ok"]]
        resp = jsonify(files=results, message=failed[0]["error"] if failed else gettext("Uploaded."))
        resp.status_code = 400 if failed and len(failed) == len(results) else 201
        return resp
    for result in results:
        if result["ok"]:
            flash(gettext("Uploaded “%(name)s”.", name=result["name"]), "success")
        else:
            flash(gettext("“%(name)s” was not uploaded: %(reason)s", name=result["name"], reason=result["error"]),
                  "error")
    return back(form.next.data)


@bp.post("/documents/<file_id>/rename")
@login_required
def rename(file_id: str):
    """Give a file a new display name (its bytes never change)."""
    form = RenameForm()
    if not form.validate():
        for message in form.name.errors:
            flash(str(message), "error")  # a lazy string from the form: the session stores text
        return back(form.next.data)
    try:
        row = files.rename(current_user, g.origin, file_id, form.name.data, keep_extension=True)
    except BadRequest as err:  # an empty, unprintable or mislabelling name: say so on the page
        flash(err.message, "error")
    else:
        flash(gettext("Renamed to “%(name)s”.", name=row.name), "success")
        return back(form.next.data, fragment=f"file-{row.public_id}")
    return back(form.next.data)


@bp.route("/documents/<file_id>/delete", methods=["GET", "POST"])
@login_required
def delete(file_id: str):
    """GET asks for confirmation (the no-script path); POST deletes (staff say why when the
    file is a clinical record), then offers Undo on the next page."""
    form = DeleteForm()
    if request.method == "GET":
        row = files.get_file(current_user, file_id, Action.DELETE)
        form.next.data = safe_next(request.args.get("next")) or ""
        return render_template("confirm_delete.html", row=row, form=form, needs_reason=needs_reason(row))
    reason = (form.reason.data or "").strip()
    if not reason and needs_reason(files.get_file(current_user, file_id, Action.DELETE)):
        flash(gettext("Say why you are removing this record from the chart; it is kept in the audit trail."),
              "error")
        return back(form.next.data)
    row = files.delete(current_user, g.origin, file_id, reason=reason or None)
    flash(f"{row.public_id}|{row.name}", UNDO)
    return back(form.next.data)


#: The header chartbox.js sends for the details drawer: the view answers with its part alone.
PARTIAL = "X-Chartbox-Partial"


@bp.get("/documents/<file_id>/details")
@bp.get("/documents/<file_id>/history", endpoint="history")  # the address it had before
@login_required
def details(file_id: str):
    """A file's details and access history (who opened, downloaded or changed it, and when):
    a page, or its part alone for the drawer."""
    row = files.get_file(current_user, file_id)
    entries = audit.access_history(row, current_user, origin=g.origin)
    if request.headers.get(PARTIAL) == "details":
        resp = make_response(render_template("_file_details.html", row=row, entries=entries, heading="h2"))
    else:
        back_to = safe_next(request.args.get("next"))  # Back returns to the row (focused there)
        back_url = f"{back_to.split('#', 1)[0]}#file-{row.public_id}" if back_to else None
        resp = make_response(render_template("details.html", row=row, entries=entries, back=back_url))
    resp.vary.add(PARTIAL)  # one address, two bodies: no cache may swap them
    return resp


@bp.post("/documents/<file_id>/restore")
@login_required
def restore(file_id: str):
    """Bring a deleted file back (Undo, or the Recently deleted page)."""
    form = ConfirmForm()
    row = files.restore(g.origin, file_id, actor=current_user)
    flash(gettext("Restored “%(name)s”.", name=row.name), "success")
    return back(form.next.data, fragment=f"file-{row.public_id}")  # focus returns to it (if listed)


@bp.get("/documents/trash")
@login_required
def trash():
    """What the patient deleted recently, with Restore."""
    if current_user.is_staff:
        return redirect(url_for("chart.patients"))
    return render_template("trash.html", rows=files.list_deleted(current_user, current_user), tab="trash",
                           patient=None, restore=ConfirmForm(formdata=None, next=here()))


@bp.post("/documents/<file_id>/visibility")
@login_required
def visibility(file_id: str):
    """Staff: make a file visible to the patient whose chart holds it, or hide it from them."""
    form = VisibilityForm()
    row = files.set_visible(current_user, g.origin, file_id, bool(form.visible.data))
    who = row.patient.full_name if row.patient else gettext("the patient")
    flash(gettext("“%(name)s” is now visible to %(who)s.", name=row.name, who=who) if row.visible
          else gettext("“%(name)s” is hidden from %(who)s.", name=row.name, who=who), "success")
    return back(form.next.data, fragment=f"file-{row.public_id}")


@bp.get("/profile")
@login_required
def profile():
    """The signed-in user's profile picture: see it, replace it, remove it."""
    form = upload_form(Category.USER_AVATAR, TargetType.USER, current_user.id)
    return render_template("profile.html", upload=form, avatar=files.current_avatar(current_user),
                           remove=ConfirmForm(formdata=None, next=url_for("documents.profile")))
