"""Candid encounter attachments (`/api/encounter-attachments/v1`): encounters are visits."""
from __future__ import annotations

import json
import re

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.datastructures import FileStorage

from app.api import candid
from app.errors import BadRequest, NotFound, register_renderer
from app.models import AttachmentType, Category, StoredFile, TargetType
from app.services import charge_capture, files
from app.services.viewing import view_url

bp = Blueprint("candid_attachments", __name__, url_prefix="/api/encounter-attachments/v1")
PREFIX = "/api/encounter-attachments/"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_DESCRIPTION = 1000


def register_errors(app: Flask) -> None:
    register_renderer(app, (PREFIX,), candid.render_attachment_error)


bp.before_request(candid.authenticate)


def _base(row: StoredFile) -> dict:
    return {
        "attachment_id": row.public_id,
        "file_name": row.name,
        "description": row.description or "",
        "content_type": row.media_type,
        "authed_url": view_url(row),
    }


def encounter_attachment_json(row: StoredFile) -> dict:
    """An EncounterAttachment; files added through other doors count as OTHER."""
    return _base(row) | {
        "encounter_id": row.visit.public_id,
        "attachment_type": row.attachment_type or AttachmentType.OTHER.value,
        "created_at": candid.iso(row.created_at),
        "created_by": candid.user_v2(row.creator),
    }


def charge_capture_attachment_json(row: StoredFile) -> dict:
    """A ChargeCaptureAttachment (no encounter fields: it may have no encounter yet)."""
    return _base(row) | {"attachment_type": row.attachment_type or AttachmentType.OTHER.value}


def _encounter(encounter_id: str) -> files.Target:
    if not _UUID.match(encounter_id):
        raise NotFound(f"No encounter with id {encounter_id!r}.")
    return files.resolve_target(g.actor, TargetType.VISIT, encounter_id)


def _attachment_type(value: str | None) -> str:
    """`attachment_type` bare (Python, Ruby SDKs) or JSON-quoted (the C# SDK's JSON part)."""
    value = (value or "").strip()
    if value.startswith('"'):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    try:
        return AttachmentType(value).value
    except ValueError:
        raise BadRequest(
            f"attachment_type must be one of: {', '.join(t.value for t in AttachmentType)}."
        ) from None


def _upload_form(with_description: bool) -> tuple[FileStorage, dict]:
    upload = request.files.get("attachment_file")
    if upload is None:
        raise BadRequest("Send the file as a multipart form field named 'attachment_file'.")
    attrs = {"attachment_type": _attachment_type(request.form.get("attachment_type"))}
    description = request.form.get("description") if with_description else None
    if description:
        if len(description) > MAX_DESCRIPTION:
            raise BadRequest(f"description has at most {MAX_DESCRIPTION} characters.")
        attrs["description"] = description
    return upload, attrs


def _attachment_id() -> str:
    """`attachment_id` from the JSON body, or the query string (for clients that drop bodies)."""
    body = request.get_json(force=True, silent=True)
    value = body.get("attachment_id") if isinstance(body, dict) else None
    value = value or request.args.get("attachment_id")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("Send attachment_id in a JSON body (or as a query parameter).")
    g.attachment_id = value.strip()
    return g.attachment_id


@bp.get("/<encounter_id>")
def list_encounter_attachments(encounter_id: str):
    """Every attachment of the encounter (from any door), newest first."""
    rows = files.list_all_files(g.actor, _encounter(encounter_id))
    return jsonify([encounter_attachment_json(row) for row in rows])


def _create(encounter_id: str, with_description: bool) -> Response:
    target = _encounter(encounter_id)
    upload, attrs = _upload_form(with_description)
    row = files.upload(g.actor, candid.origin(), upload.stream, upload.filename,
                       Category.INTAKE_ATTACHMENT, target, attrs)
    return jsonify(row.public_id)


@bp.put("/<encounter_id>")
def create_encounter_attachment(encounter_id: str):
    """Attach a file (deprecated v1: no description). Answers the attachment id as a string."""
    return _create(encounter_id, with_description=False)


@bp.put("/<encounter_id>/v2")
def create_encounter_attachment_v2(encounter_id: str):
    """Attach a file with an optional description. Answers the attachment id as a string."""
    return _create(encounter_id, with_description=True)


@bp.delete("/<encounter_id>")
def delete_encounter_attachment(encounter_id: str):
    """Delete one of the encounter's attachments (soft); no body."""
    target = _encounter(encounter_id)
    files.delete(g.actor, candid.origin(), _attachment_id(), visit=target.visit)
    return Response(status=204)


@bp.post("/create-from-charge-capture-external-id")
def create_from_charge_capture_external_id():
    """Upload for the encounter with this external id, now or when it is created."""
    upload, attrs = _upload_form(with_description=True)
    row = charge_capture.upload(g.actor, candid.origin(), upload.stream, upload.filename,
                                request.form.get("charge_capture_external_id", ""), attrs)
    return jsonify(row.public_id)


@bp.get("/by-charge-capture-external-id/<external_id>")
def list_charge_capture_attachments(external_id: str):
    """The attachments uploaded for this external id, waiting or attached."""
    rows = charge_capture.list_files(g.actor, external_id)
    return jsonify([charge_capture_attachment_json(row) for row in rows])


@bp.delete("/by-charge-capture-external-id/<external_id>")
def delete_charge_capture_attachment(external_id: str):
    """Delete one attachment uploaded for this external id (soft); no body."""
    files.delete(g.actor, candid.origin(), _attachment_id(), external_id=external_id)
    return Response(status=204)
