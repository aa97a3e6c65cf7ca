"""tscharts dialect: `Authorization: Token <token>`, integer image ids, `{"detail": …}` errors.

Images travel as base64 inside JSON; they are ordinary patient documents underneath
(app/services/chart_images.py), so every other door sees them too.
"""
from __future__ import annotations

import base64
import binascii
import json
import re

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from app.api.auth import bearer, origin_of, principal
from app.errors import BadRequest, ChartboxError, Forbidden, register_renderer
from app.models import Channel, StoredFile
from app.models.enums import ImageType
from app.services import accounts, chart_images
from app.services.chart_images import ImageQuery

bp = Blueprint("tscharts", __name__, url_prefix="/tscharts/v1")
PREFIX = "/tscharts/"
_MAX_ID = 2**63 - 1  # BIGINT: clinic and station ids beyond it could not even be stored
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_PUBLIC = {"tscharts.login"}


def render_error(err: ChartboxError) -> Response:
    message = err.message
    limit = request.max_content_length
    if err.status == 413 and limit and (request.content_length or 0) > limit:
        message = f"The request body is larger than the {limit:,}-byte limit."  # not the file limit
    resp = jsonify(detail=message)
    resp.status_code = err.status
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = "Token"
    return resp


def register_errors(app: Flask) -> None:
    register_renderer(app, (PREFIX,), render_error)


@bp.before_request
def authenticate() -> None:
    # Base64 inflates an image by 4/3, so these bodies get their own, larger limit.
    request.max_content_length = current_app.config["JSON_UPLOAD_MAX_BYTES"]
    if request.endpoint not in _PUBLIC:
        g.actor = principal(bearer(request, "Token"))


def _origin():
    return origin_of(request, Channel.TSCHARTS)


def _json_object() -> dict:
    """The request body as a JSON object; never a 500, whatever arrives."""
    data = request.get_data(cache=False)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def _id(value, name: str) -> int | None:
    """An id given as an integer or a numeric string (tscharts coerces with int()); 0 is none."""
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer id.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.match(value.strip()):
        number = int(value.strip())
    else:
        raise BadRequest(f"{name} must be an integer id.")
    if not 0 <= number <= _MAX_ID:
        raise BadRequest(f"{name} must be an integer id.")
    return number or None


def _image_type(value) -> ImageType:
    try:
        return ImageType(value)
    except ValueError:
        raise BadRequest(
            f"type must be one of {', '.join(t.value for t in ImageType)} (case-sensitive)."
        ) from None


def _flag(name: str) -> bool:
    value = request.args.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false.")
    return value == "true"


def image_json(row: StoredFile, data: bytes) -> dict:
    """An image in tscharts' shape: the stored bytes as base64 in `data`."""
    return {
        "id": row.id,
        "patient": row.patient_id,
        "clinic": row.tscharts_clinic,
        "station": row.tscharts_station,
        "type": row.image_type,
        "data": base64.b64encode(data).decode("ascii"),
    }


@bp.post("/login/")
def login():
    """Exchange a username and password for a new API token (`{"token", "id"}`)."""
    body = _json_object()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise BadRequest("Send a username and a password.")
    signed_in = accounts.issue_login_token(username, password, request.remote_addr, "tscharts login")
    if signed_in is None:
        raise Forbidden("The username or password is not correct.")
    user, token = signed_in
    return {"token": token, "id": user.id}


@bp.post("/logout/")
def logout():
    """Revoke the token this request was made with."""
    accounts.revoke_presented_token(bearer(request, "Token"))
    return {}


@bp.post("/image/")
def create_image():
    """Store a base64 PNG/JPEG as a typed image of a patient: `{"id": n}`."""
    body = _json_object()
    image_type = _image_type(body.get("type"))
    if "patient" not in body:
        raise BadRequest("patient is required.")
    patient = _id(body["patient"], "patient")
    # clinic and station are optional, but when present must be ids (null is refused, as tscharts does).
    clinic = _id(body["clinic"], "clinic") if "clinic" in body else None
    station = _id(body["station"], "station") if "station" in body else None
    data = body.get("data")
    if not isinstance(data, str) or not data:
        raise BadRequest("data (the base64 image) is required.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("data must be base64 (standard alphabet, padded).") from None
    row = chart_images.upload_image(g.actor, _origin(), raw, patient or 0, image_type, clinic, station)
    return {"id": row.id}


@bp.get("/image/")
def search_images():
    """Ids of matching images (404 when none), or the newest one itself with `newest=true`."""
    newest, newest_first = _flag("newest"), _flag("sort")
    args = request.args
    query = ImageQuery(
        patient_id=_id(args["patient"], "patient") if "patient" in args else None,
        clinic=_id(args["clinic"], "clinic") if "clinic" in args else None,
        station=_id(args["station"], "station") if "station" in args else None,
        image_type=_image_type(args["type"]) if "type" in args else None,
        newest_first=newest_first,
    )
    if newest:
        return image_json(*chart_images.newest_image(g.actor, _origin(), query))
    return jsonify(chart_images.find_image_ids(g.actor, query))


@bp.get("/image/<int:image_id>/")
def get_image(image_id: int):
    """One image with its base64 `data`."""
    return image_json(*chart_images.get_image(g.actor, _origin(), image_id))


@bp.delete("/image/<int:image_id>/")
def delete_image(image_id: int):
    """Delete an image: `{}`; a second time, 404."""
    chart_images.delete_image(g.actor, _origin(), image_id)
    return {}
