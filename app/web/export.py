"""“Download all my records”: a patient's whole chart as one ZIP, for the patient or their care team."""
from __future__ import annotations

from flask import Blueprint, g
from flask_login import current_user, login_required

from app.api.links import send_archive
from app.services import accounts, export

bp = Blueprint("export", __name__)


@bp.get("/documents/export")
@login_required
def mine():
    """The signed-in patient's own records."""
    return send_archive(export.export_chart(current_user, g.origin, current_user))


@bp.get("/patients/<int:patient_id>/export")
@login_required
def chart(patient_id: int):
    """A patient's records, for staff of their clinic (NotFound for anyone else)."""
    return send_archive(export.export_chart(current_user, g.origin, accounts.get_patient(current_user, patient_id)))
