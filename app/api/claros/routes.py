"""Claros Health "Upload Patient PDF" dialect: `X-API-Key`, one endpoint, `{"detail": …}` errors."""
from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, g, jsonify, request

from app.api.auth import origin_of, principal
from app.errors import BadRequest, ChartboxError, register_renderer, render_page_error
from app.models import Category, Channel, StoredFile
from app.services import accounts, files
from app.services.validation import clean_name, name_extension
from app.services.viewing import view_url

bp = Blueprint("claros", __name__)
# Claros' paths share /patients/ with pages another door may serve; only these are Claros'.
_CLAROS_PATH = re.compile(r"^/patients/[^/]*/pdf/?$")


def render_error(err: ChartboxError) -> Response:
    if not _CLAROS_PATH.match(request.path):
        return render_page_error(err)
    resp = jsonify(detail=err.message)
    resp.status_code = err.status
    return resp


def register_errors(app: Flask) -> None:
    register_renderer(app, ("/patients/",), render_error)


@bp.before_request
def authenticate() -> None:
    g.actor = principal(request.headers.get("X-API-Key"))


def pdf_json(row: StoredFile) -> dict:
    """The uploaded PDF in Claros' shape; `url` is a fresh signed view link."""
    return {
        "id": row.public_id,
        "url": view_url(row),
        "filename": row.name,
        "created_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "patient_id": row.patient_id,
    }


@bp.post("/patients/<int:patient_id>/pdf")
@bp.post("/patients/<int:patient_id>/pdf/")
def upload_patient_pdf(patient_id: int):
    """Add a PDF (multipart `file` + `filename`) to a patient's documents."""
    patient = accounts.locate_patient(patient_id, g.actor.account_id)  # before reading the body
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the PDF as a multipart form field named 'file'.")
    # `filename` is required by Claros; the file part's own name stands in when it is missing.
    name = clean_name(request.form.get("filename") or upload.filename)
    if name_extension(name) != "pdf":
        raise BadRequest("The filename must include the .pdf extension.")
    row = files.upload(g.actor, origin_of(request, Channel.CLAROS), upload.stream, name,
                       Category.USER_DOCUMENT, files.Target(patient))
    return pdf_json(row)
