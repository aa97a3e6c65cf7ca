"""Candid pre-encounter images (`/images/v1`): versioned metadata plus a signed URL for bytes."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, g, jsonify, request

from app.api import candid
from app.api.links import send_download
from app.errors import register_renderer
from app.models import CandidImage, User
from app.services import candid_images

bp = Blueprint("candid_images", __name__, url_prefix="/images/v1")
PREFIX = "/images/v1/"
_SIGNED = "candid_images.image_content"  # authorised by its signature, not a token


def register_errors(app: Flask) -> None:
    register_renderer(app, (PREFIX,), candid.render_image_error)


@bp.before_request
def authenticate() -> None:
    if request.endpoint != _SIGNED:
        candid.authenticate()


def image_json(row: CandidImage, actor: User) -> dict:
    """An image in Candid's shape; `coverage` and `patient` are left out when not set."""
    body = {
        "deactivated": row.deactivated,
        "display_name": row.display_name,
        "file_name": row.file_name,
        "file_type": row.file_type,
        "id": row.id,
        "organization_id": row.account.code,
        "signed_url": candid_images.signed_url(actor, row),
        "status": row.status,
        "updated_at": candid.iso(row.updated_at),
        "updating_user_id": str(row.updating_user_id),
        "version": row.version,
    }
    if row.coverage_id is not None:
        body["coverage"] = {"id": row.coverage_id, "side": row.coverage_side}
    if row.patient_id is not None:
        body["patient"] = {"id": str(row.patient_id)}
        if row.patient_notes is not None:
            body["patient"]["notes"] = row.patient_notes
    return body


def _body():
    return request.get_json(force=True, silent=True)


@bp.post("")
def create_image():
    """Create image metadata (a MutableImage) at version 1."""
    return image_json(candid_images.create(g.actor, candid.origin(), _body()), g.actor)


@bp.get("")
def search_images():
    """Active images matching the filters, as a bare array."""
    rows = candid_images.search(g.actor, request.args)
    return jsonify([image_json(row, g.actor) for row in rows])


@bp.get("/<image_id>")
def get_image(image_id: str):
    """One image, deactivated or not."""
    return image_json(candid_images.get(g.actor, image_id), g.actor)


@bp.put("/<image_id>/<version>")
def update_image(image_id: str, version: str):
    """Full replace at the current version; answers the image at version+1."""
    return image_json(candid_images.update(g.actor, candid.origin(), image_id, version, _body()), g.actor)


@bp.delete("/<image_id>/<version>")
def deactivate_image(image_id: str, version: str):
    """Deactivate at the current version; no body."""
    candid_images.deactivate(g.actor, candid.origin(), image_id, version)
    return Response(status=204)


@bp.route("/<image_id>/content", methods=["GET", "PUT"])
def image_content(image_id: str):
    """The signed URL: PUT stores the image's bytes (status UPLOADED), GET returns them."""
    args = request.args
    if request.method == "PUT":
        row = candid_images.upload_content(candid.origin(), image_id, args.get("by"),
                                           args.get("auth_code"), args.get("time"), request.stream)
        return Response(status=200, headers={"ETag": f'"{row.file.sha256}"'})
    download = candid_images.open_content(candid.origin(), image_id, args.get("by"),
                                          args.get("auth_code"), args.get("time"))
    return send_download(download)
