"""Claros Health "Upload Patient PDF": `X-API-Key`, one endpoint, `{"detail": …}` errors."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from app.errors import BadRequest, ChartboxError, NotFound
from app.models import Category, StoredFile
from app.services import accounts, files
from app.services.validation import PDF, clean_name, name_extension
from app.urls import view_url

bp = Blueprint("claros", __name__)


def render_error(err: ChartboxError) -> Response:
    resp = jsonify(detail=err.message)
    resp.status_code = err.status
    return resp


def pdf_json(row: StoredFile) -> dict:
    """The uploaded PDF in Claros' shape; `url` is a fresh signed view link."""
    return {
        "id": row.public_id,
        "url": view_url(row, g.actor),
        "filename": row.name,
        "created_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "patient_id": row.patient_id,
    }


@bp.post("/patients/<int:patient_id>/pdf")
@bp.post("/patients/<int:patient_id>/pdf/")
def upload_patient_pdf(patient_id: int):
    """Add a PDF (multipart `file` + `filename`) to a patient's documents."""
    try:  # before reading the body; one answer for every patient out of reach (no oracle)
        patient = accounts.get_patient(g.actor, patient_id)
    except NotFound:
        raise NotFound("Patient not found.") from None
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the PDF as a multipart form field named 'file'.")
    # Claros' document makes `filename` required, and it must include the .pdf extension.
    name = request.form.get("filename")
    if name is None:
        raise BadRequest("Send the name to give the PDF in a form field named 'filename'.")
    if name_extension(clean_name(name)) != "pdf":
        raise BadRequest("The filename must include the .pdf extension.")
    row = files.upload(g.actor, g.origin, upload.stream, name, Category.USER_DOCUMENT,
                       files.Target.chart(patient), accept={PDF})
    return pdf_json(row)
