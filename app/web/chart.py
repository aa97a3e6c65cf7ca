"""Providers' pages: the clinic's patients, and each patient's chart (Documents, Visits, Consents)."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required

from app.errors import BadRequest, Conflict
from app.models import Category, TargetType
from app.services import accounts, directory, files
from app.services import visits as visit_service  # (the page `visits` below takes the name)
from app.services.files import Target
from app.web import display, toolbar
from app.web.display import preload_avatars
from app.web.documents import page_size, upload_form, visit_groups
from app.web.forms import ConfirmForm, VisitForm
from app.web.navigation import here, page_number

bp = Blueprint("chart", __name__)


@bp.get("/patients")
@login_required
def patients():
    """The clinic's patients, with a search box (names in any order, date of birth, chart number)."""
    query = (request.args.get("q") or "").strip()
    listing = directory.find_patients(current_user, query, page_number(), page_size())
    preload_avatars(listing.items)
    return render_template("patients.html", listing=listing, query=query)


def _patient(patient_id: int):
    """The chart's patient, or NotFound when outside the signed-in user's reach."""
    return accounts.get_patient(current_user, patient_id)


@bp.get("/patients/<int:patient_id>")
@login_required
def documents(patient_id: int):
    """A patient's documents (and the visit files and consents visible to them), with the
    provider's actions."""
    patient = _patient(patient_id)
    if patient.id == current_user.id:
        return redirect(url_for("documents.index"))
    bar = toolbar.read(request.args)
    listing = files.list_files(current_user, Target.chart(patient), Category.USER_DOCUMENT,
                               include_shared=True, page=page_number(), per_page=page_size(), origin=g.origin,
                               query=bar.query)
    return render_template(
        "chart_documents.html", patient=patient, listing=listing, tab="documents", bar=bar,
        upload=upload_form(Category.USER_DOCUMENT, TargetType.USER, patient.id),
    )


@bp.route("/patients/<int:patient_id>/visits", methods=["GET", "POST"])
@login_required
def visits(patient_id: int):
    """A patient's visits with their intake attachments; POST opens a new visit."""
    patient = _patient(patient_id)
    if patient.id == current_user.id:
        return redirect(url_for("documents.visits"))
    form = VisitForm()
    status = 200
    if form.validate_on_submit():
        try:
            visit = accounts.create_visit(patient, form.external_id.data or None, form.reason.data.strip(),
                                          g.origin, current_user)
        except (BadRequest, Conflict) as err:
            form.external_id.errors.append(err.message)
            status = 400
        else:
            flash(gettext("Opened a visit: %(reason)s.", reason=visit.reason), "success")
            return redirect(url_for("chart.visits", patient_id=patient.id), code=303)
    elif request.method == "POST":
        status = 400
    return render_template("chart_visits.html", patient=patient, groups=visit_groups(patient), form=form,
                           tab="visits"), status


@bp.post("/patients/<int:patient_id>/visits/<visit_id>/status")
@login_required
def visit_status(patient_id: int, visit_id: str):
    """Staff: mark one of the chart's visits open, completed or cancelled."""
    patient = _patient(patient_id)
    try:
        status = visit_service.parse_status(request.form.get("status"))
    except BadRequest as err:
        flash(err.message, "error")
    else:
        visit = visit_service.set_status(current_user, visit_id, status, g.origin, patient=patient)
        flash(gettext("“%(visit)s” is now marked %(status)s.", visit=visit.reason or gettext("Visit"),
                      status=display.visit_status(visit.status).lower()), "success")
    return redirect(url_for("chart.visits", patient_id=patient.id, _anchor=f"visit-{visit_id}"), code=303)


@bp.get("/patients/<int:patient_id>/trash")
@login_required
def trash(patient_id: int):
    """Everything deleted on the chart recently (who and when), with Restore."""
    patient = _patient(patient_id)
    if patient.id == current_user.id:
        return redirect(url_for("documents.trash"))
    return render_template("trash.html", rows=files.list_deleted(current_user, patient), patient=patient,
                           tab="trash", restore=ConfirmForm(formdata=None, next=here()))


@bp.get("/patients/<int:patient_id>/consents")
@login_required
def consents(patient_id: int):
    """A patient's signed consent forms."""
    patient = _patient(patient_id)
    listing = files.list_files(current_user, Target.chart(patient), Category.USER_CONSENT,
                               page=page_number(), per_page=page_size(), origin=g.origin)
    return render_template(
        "chart_consents.html", patient=patient, listing=listing, tab="consents",
        upload=upload_form(Category.USER_CONSENT, TargetType.USER, patient.id),
    )
