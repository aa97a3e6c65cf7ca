"""VSee Clinic `api_v3/files` dialect: `X-ApiToken`, `{"data": …}`, `{"code", "message"}`."""
from __future__ import annotations

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for

from app.api.auth import principal
from app.errors import BadRequest, ChartboxError, Unauthorized, register_renderer
from app.models import Action, Category, Channel, StoredFile, TargetType, User
from app.services import access, files
from app.services.audit import Origin
from app.services.viewing import view_url

bp = Blueprint("vsee", __name__, url_prefix="/api_v3")
PREFIX = "/api_v3/"


def render_error(err: ChartboxError) -> Response:
    resp = jsonify(code=err.status, message=err.message)
    resp.status_code = err.status
    return resp


def register_errors(app: Flask) -> None:
    register_renderer(app, (PREFIX,), render_error)


@bp.before_request
def authenticate() -> None:
    user = principal(request.headers.get("X-ApiToken"))
    account_code = (request.headers.get("X-AccountCode") or "").strip()
    if account_code and account_code != user.account.code:
        raise Unauthorized("X-AccountCode does not match the API token's account.")
    g.actor = user


def _origin():
    return Origin.of(request, Channel.VSEE)


def _field(*names: str) -> str | None:
    """A form field under any of its spellings (dotted, or PHP-style brackets)."""
    for name in names:
        value = request.form.get(name)
        if value is not None:
            return value
    return None


def _flag(value: str | None) -> bool:
    if value is None:
        return False
    return value.strip().lower() not in ("0", "false", "no", "off")


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise BadRequest(f"{name} must be a positive whole number.")
    return int(value)


def file_json(row: StoredFile, actor: User) -> dict:
    """A file in VSee's shape, with a freshly signed `fullpath`."""
    creator = row.creator
    target_id = row.visit.public_id if row.target_type == TargetType.VISIT else str(row.target_id)
    return {
        "id": row.public_id,
        "name": row.name,
        "size": row.size,
        "ext": row.ext,
        "fullpath": view_url(row),
        "meta": {
            "category": row.category,
            "target": {"id": target_id, "type": row.target_type},
            "account": {"code": row.account.code},
            "visible": row.category == Category.USER_DOCUMENT or row.shared,
        },
        "creator": {
            "id": str(creator.id),
            "username": creator.username,
            "email": creator.email or "",
            "full_name": creator.full_name,
            "type": creator.vsee_type,
        },
        "created": int(row.created_at.timestamp()),
        "modified": int(row.modified_at.timestamp()),
        "is_deletable": access.can(actor, row, Action.DELETE),
    }


@bp.post("/files")
def upload_file():
    """Upload one file (multipart `file`, `meta.category`, `meta.target.*`)."""
    upload = request.files.get("file")
    if upload is None or upload.filename is None:
        raise BadRequest("Send the file as a multipart form field named 'file'.")
    category = files.parse_category(_field("meta.category", "meta[category]", "category"))
    target = files.resolve_target(
        g.actor,
        _field("meta.target.type", "meta[target][type]"),
        _field("meta.target.id", "meta[target][id]"),
    )
    row = files.upload(g.actor, _origin(), upload.stream, upload.filename, category, target)
    return {"data": file_json(row, g.actor)}


@bp.get("/files")
def list_files():
    """The caller's visible files for a target, newest first (optional page/per_page)."""
    target = files.resolve_target(g.actor, request.args.get("target_type"), request.args.get("target_id"))
    category = files.parse_category(
        request.args.get("category_type", request.args.get("category")), default=None
    )
    include_shared = "include_shared" in request.args and _flag(request.args.get("include_shared"))
    page = files.list_files(g.actor, target, category, include_shared,
                            page=_int_arg("page") or 1, per_page=_int_arg("per_page"))
    resp = jsonify(data=[file_json(row, g.actor) for row in page.items])
    resp.headers["X-Total-Count"] = str(page.total)
    resp.headers["X-Page"], resp.headers["X-Per-Page"] = str(page.page), str(page.per_page)
    if page.has_next:
        args = request.args.to_dict() | {"page": page.page + 1, "per_page": page.per_page}
        resp.headers["Link"] = f'<{url_for("vsee.list_files", _external=True, **args)}>; rel="next"'
    return resp


@bp.get("/files/<file_id>")
def get_file(file_id: str):
    """One file with a fresh signed `fullpath`."""
    return {"data": file_json(files.get_file(g.actor, file_id), g.actor)}


@bp.post("/files/<file_id>")
def rename_file(file_id: str):
    """Rename (`name` as multipart, urlencoded or JSON); nothing else changes."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("The JSON body must be an object like {\"name\": \"new.pdf\"}.")
        name = body.get("name")
    else:
        name = request.form.get("name", request.args.get("name"))
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Send the new name in a field named 'name'.")
    row = files.rename(g.actor, _origin(), file_id, name)
    return {"data": file_json(row, g.actor)}


@bp.delete("/files/<file_id>")
def delete_file(file_id: str):
    """Soft-delete a file."""
    files.delete(g.actor, _origin(), file_id)
    return {"data": True}
