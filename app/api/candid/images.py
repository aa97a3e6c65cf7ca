"""Candid pre-encounter images (`/images/v1`): versioned metadata plus a signed URL for bytes."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from app.api import params
from app.api.candid import image_service
from app.api.candid.shapes import image_json
from app.api.links import send_download

bp = Blueprint("candid_images", __name__, url_prefix="/images/v1")


@bp.post("")
def create_image():
    """Create image metadata (a MutableImage) at version 1."""
    row = image_service.create(g.actor, g.origin, params.json_body(required=False))
    return image_json(row, g.actor)


@bp.get("")
def search_images():
    """Active images matching the filters, as a bare array."""
    rows = image_service.search(g.actor, g.origin, request.args)
    return jsonify([image_json(row, g.actor) for row in rows])


@bp.get("/<image_id>")
def get_image(image_id: str):
    """One image, deactivated or not."""
    return image_json(image_service.get(g.actor, image_id), g.actor)


@bp.put("/<image_id>/<segment_except('content'):version>")
def update_image(image_id: str, version: str):
    """Full replace at the current version; answers the image at version+1."""
    row = image_service.update(g.actor, g.origin, image_id, version, params.json_body(required=False))
    return image_json(row, g.actor)


@bp.delete("/<image_id>/<segment_except('content'):version>")
def deactivate_image(image_id: str, version: str):
    """Deactivate at the current version; no body."""
    image_service.deactivate(g.actor, g.origin, image_id, version)
    return Response(status=204)


@bp.route("/<image_id>/content", methods=["GET", "PUT"])
def image_content(image_id: str):
    """The signed URL: PUT stores the image's bytes (status UPLOADED), GET returns them."""
    args = request.args
    if request.method == "PUT":
        row = image_service.upload_content(g.origin, image_id, args.get("by"), args.get("auth_code"),
                                           args.get("time"), request.stream, args.get("v"))
        return Response(status=200, headers={"ETag": f'"{row.file.sha256}"' if row.file else ""})
    download = image_service.open_content(g.origin, image_id, args.get("by"), args.get("auth_code"),
                                          args.get("time"), args.get("v"))
    return send_download(download)
