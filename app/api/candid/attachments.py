"""Candid encounter attachments (`/api/encounter-attachments/v1`): encounters are visits."""
from __future__ import annotations

import json

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.datastructures import FileStorage

from app.api import params
from app.api.candid import attachment_service
from app.api.candid.models import AttachmentType
from app.api.candid.shapes import charge_capture_attachment_json, encounter_attachment_json
from app.errors import BadRequest, NotFound
from app.models import TargetType
from app.services import files

bp = Blueprint("candid_attachments", __name__, url_prefix="/api/encounter-attachments/v1")


def _encounter(encounter_id: str) -> files.Target:
    visit_id = params.uuid(encounter_id)
    if visit_id is None:
        raise NotFound(f"No encounter with id {encounter_id!r}.")
    return files.resolve_target(g.actor, TargetType.VISIT, visit_id)


def _attachment_type(value: str | None) -> AttachmentType:
    """`attachment_type` bare (Python, Ruby SDKs) or JSON-quoted (the C# SDK's JSON part)."""
    value = (value or "").strip()
    if value.startswith('"'):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    try:
        return AttachmentType(value)
    except ValueError:
        raise BadRequest(
            f"attachment_type must be one of: {', '.join(t.value for t in AttachmentType)}."
        ) from None


def _upload_form(with_description: bool) -> tuple[FileStorage, AttachmentType, str | None]:
    upload = request.files.get("attachment_file")
    if upload is None:
        raise BadRequest("Send the file as a multipart form field named 'attachment_file'.")
    description = (request.form.get("description") or None) if with_description else None
    return upload, _attachment_type(request.form.get("attachment_type")), description


def _attachment_id() -> str:
    """`attachment_id` from the JSON body, or the query string (for clients that drop bodies)."""
    body = params.json_object(required=False)
    value = body.get("attachment_id") or request.args.get("attachment_id")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("Send attachment_id in a JSON body (or as a query parameter).")
    g.attachment_id = value.strip()
    return g.attachment_id


# An encounter id is any segment but the fixed paths beside it, so those answer 405 for a method
# they do not declare (routing.py).
ENCOUNTER = "<segment_except('create-from-charge-capture-external-id', 'by-charge-capture-external-id'):encounter_id>"


@bp.get(f"/{ENCOUNTER}")
def list_encounter_attachments(encounter_id: str):
    """Every attachment of the encounter (from any door), newest first."""
    rows = files.list_all_files(g.actor, _encounter(encounter_id), origin=g.origin)
    details = attachment_service.details(rows)
    return jsonify([encounter_attachment_json(row, details.get(row.id), g.actor) for row in rows])


def _create(encounter_id: str, with_description: bool) -> Response:
    target = _encounter(encounter_id)
    upload, kind, description = _upload_form(with_description)
    row = attachment_service.upload(g.actor, g.origin, upload.stream, upload.filename, target, kind, description)
    return jsonify(row.public_id)


@bp.put(f"/{ENCOUNTER}")
def create_encounter_attachment(encounter_id: str):
    """Attach a file (deprecated v1: no description). Answers the attachment id as a string."""
    return _create(encounter_id, with_description=False)


@bp.put(f"/{ENCOUNTER}/v2")
def create_encounter_attachment_v2(encounter_id: str):
    """Attach a file with an optional description. Answers the attachment id as a string."""
    return _create(encounter_id, with_description=True)


@bp.delete(f"/{ENCOUNTER}")
def delete_encounter_attachment(encounter_id: str):
    """Delete one of the encounter's attachments (soft); no body."""
    target = _encounter(encounter_id)
    files.delete(g.actor, g.origin, _attachment_id(), visit=target.visit)
    return Response(status=204)


@bp.post("/create-from-charge-capture-external-id")
def create_from_charge_capture_external_id():
    """Upload for the encounter with this external id, now or when it is created."""
    upload, kind, description = _upload_form(with_description=True)
    row = attachment_service.upload_for_external_id(
        g.actor, g.origin, upload.stream, upload.filename,
        request.form.get("charge_capture_external_id", ""), kind, description)
    return jsonify(row.public_id)


@bp.get("/by-charge-capture-external-id/<external_id>")
def list_charge_capture_attachments(external_id: str):
    """The attachments uploaded for this external id, held or filed."""
    rows = attachment_service.list_for_external_id(g.actor, external_id)
    return jsonify([charge_capture_attachment_json(row, detail, g.actor) for row, detail in rows])


@bp.delete("/by-charge-capture-external-id/<external_id>")
def delete_charge_capture_attachment(external_id: str):
    """Delete one attachment uploaded for this external id (soft); no body."""
    attachment_service.delete_for_external_id(g.actor, g.origin, _attachment_id(), external_id)
    return Response(status=204)
