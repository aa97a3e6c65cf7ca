"""VSee Clinic `api_v3/files` routes: `X-ApiToken`, `{"data": …}`, `{"code", "message"}`."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from app.api import params
from app.api.links import send_archive
from app.errors import BadRequest, ChartboxError, Unauthorized
from app.models import Action, Role, StoredFile, TargetType, User
from app.services import access, audit, export, files
from app.urls import external_url, view_url

bp = Blueprint("vsee", __name__, url_prefix="/api_v3")
#: VSee's creator.type codes.
USER_TYPE = {Role.ADMIN: 100, Role.PATIENT: 200, Role.PROVIDER: 400}


def render_error(err: ChartboxError) -> Response:
    resp = jsonify(code=err.status, message=err.message)
    resp.status_code = err.status
    return resp


def check_account_code(user: User) -> None:
    """`X-AccountCode` is optional; when sent it must be the token's clinic."""
    account_code = (request.headers.get("X-AccountCode") or "").strip()
    if account_code and account_code != user.account.code:
        raise Unauthorized("X-AccountCode does not match the API token's account.")


def target(kind: str | None, ident: str | None) -> files.Target:
    """The chart a `meta.target.type`/`target_type` and id pair names (the caller's own when
    both are empty). Raises BadRequest (malformed) or NotFound (out of reach)."""
    ref = params.target(kind, ident, type_field="meta.target.type", id_field="meta.target.id")
    return files.resolve_target(g.actor, *ref)


def file_json(row: StoredFile, actor: User) -> dict:
    """A file in VSee's shape, with a freshly signed `fullpath`."""
    creator = row.creator
    target_id = row.visit.public_id if row.target_type == TargetType.VISIT and row.visit else str(row.target_id)
    return {
        "id": row.public_id,
        "name": row.name,
        "size": row.size,
        "ext": row.ext,
        "fullpath": view_url(row, actor),
        "meta": {
            "category": row.category,
            "target": {"id": target_id, "type": row.target_type},
            "account": {"code": row.account.code},
            "visible": row.visible,
        },
        "creator": {
            "id": str(creator.id),
            "username": creator.username,
            "email": creator.email or "",
            "full_name": creator.full_name,
            "type": USER_TYPE[creator.role_enum],
        },
        "created": int(row.created_at.timestamp()),
        "modified": int(row.modified_at.timestamp()),
        "is_deletable": access.can(actor, row, Action.DELETE),
    }


def one_file(row: StoredFile) -> Response:
    """`{"data": file}` with the file's version as its ETag (send it back in If-Match)."""
    resp = jsonify(data=file_json(row, g.actor))
    resp.headers["ETag"] = f'"{row.version}"'
    return resp


@bp.post("/files")
def upload_file():
    """Upload one file (multipart `file`, `meta.category`, `meta.target.*`)."""
    upload = request.files.get("file")
    if upload is None or upload.filename is None:
        raise BadRequest("Send the file as a multipart form field named 'file'.")
    category = files.parse_category(params.form_field("meta.category", "meta[category]", "category"))
    chart = target(params.form_field("meta.target.type", "meta[target][type]"),
                   params.form_field("meta.target.id", "meta[target][id]"))
    row = files.upload(g.actor, g.origin, upload.stream, upload.filename, category, chart)
    return one_file(row)


@bp.get("/files")
def list_files():
    """The caller's visible files for a target, newest first (optional page/per_page)."""
    chart = target(request.args.get("target_type"), request.args.get("target_id"))
    category = files.parse_category_filter(request.args.get("category_type", request.args.get("category")))
    include_shared = "include_shared" in request.args and params.flag(request.args.get("include_shared"))
    page = files.list_files(g.actor, chart, category, include_shared,
                            page=params.positive(request.args.get("page"), "page") or 1,
                            per_page=params.positive(request.args.get("per_page"), "per_page"), origin=g.origin,
                            query=list_query())
    resp = jsonify(data=[file_json(row, g.actor) for row in page.items])
    resp.headers["X-Total-Count"] = str(page.total)
    resp.headers["X-Page"], resp.headers["X-Per-Page"] = str(page.page), str(page.per_page)
    if page.has_next:
        args: dict[str, Any] = request.args.to_dict() | {"page": page.page + 1, "per_page": page.per_page}
        resp.headers["Link"] = f'<{external_url("vsee.list_files", **args)}>; rel="next"'
    return resp


def list_query() -> files.ListQuery | None:
    """`q` (words in the name or inside the file) and `sort`, when given (None: VSee's own
    listing, unchanged). Raises BadRequest for an unknown sort."""
    q, sort = request.args.get("q"), request.args.get("sort")
    if q is None and sort is None:
        return None
    try:
        order = files.Sort(sort) if sort else files.Sort.NEWEST
    except ValueError:
        raise BadRequest(f"Unknown sort {(sort or '')[:40]!r}; use one of: {', '.join(s.value for s in files.Sort)}.") \
            from None
    return files.ListQuery(q=q or "", sort=order)


@bp.get("/files/export")
def export_files():
    """A patient's whole record the caller may see, as one ZIP (`target_type=user&target_id=…`;
    the caller's own without them): services/export.py."""
    chart = target(request.args.get("target_type"), request.args.get("target_id"))
    if chart.visit is not None or chart.patient is None:
        raise BadRequest("An export is of a patient's whole record: use target_type=user.")
    return send_archive(export.export_chart(g.actor, g.origin, chart.patient))


@bp.get("/files/<file_id>")
def get_file(file_id: str):
    """One file with a fresh signed `fullpath`."""
    return one_file(files.get_file(g.actor, file_id))


@bp.post("/files/<segment_except('export'):file_id>")  # POST /files/export: 405, Allow GET
def rename_file(file_id: str):
    """Rename (`name`) and/or, for staff, set `visible` (true|false): multipart, urlencoded or JSON."""
    if request.is_json:
        body = params.json_body(required=False)
        if not isinstance(body, dict):
            raise BadRequest("The JSON body must be an object like {\"name\": \"new.pdf\"}.")
        name, visible = body.get("name"), body.get("visible")
    else:
        name = request.form.get("name", request.args.get("name"))
        visible = request.form.get("visible", request.args.get("visible"))
    if visible is None and (not isinstance(name, str) or not name.strip()):
        raise BadRequest("Send the new name in a field named 'name' (or visible=true|false).")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise BadRequest("Send the new name in a field named 'name'.")
    flag = None if visible is None else _visible_flag(visible)  # parsed before anything changes
    row = None
    if name is not None:
        row = files.rename(g.actor, g.origin, file_id, name, expected_version=_expected_version())
    if flag is not None:
        row = files.set_visible(g.actor, g.origin, file_id, flag)
    if row is None:  # neither was sent; refused above already
        raise BadRequest("Send the new name in a field named 'name' (or visible=true|false).")
    # The changed row itself, not a fresh lookup: a delete committed just after this change
    # must not turn the answer to a rename that happened into a 404.
    return one_file(row)


def _visible_flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise BadRequest("visible must be true or false.")


def _expected_version() -> int | None:
    """The version a rename is based on: `If-Match: "<version>"` (or `version` in the body)."""
    value = request.headers.get("If-Match")
    if value is None:
        body = params.json_object(required=False) if request.is_json else request.form
        value = body.get("version")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
    if value is None or value == "":
        return None
    text = value.strip().removeprefix("W/").strip('"') if isinstance(value, str) else ""
    number = params.positive(text, "If-Match") if params.is_number(text) else None
    if number is None:
        raise BadRequest("If-Match (or version) must be the file's version number, e.g. \"3\".")
    return number


@bp.get("/files/<file_id>/access")
def file_access(file_id: str):
    """Who opened, downloaded or changed the file, and when (newest first)."""
    row = files.get_file(g.actor, file_id)
    return {"data": [{"at": int(e.at.timestamp()), "action": e.action, "who": e.who, "role": e.role,
                      "via": e.via, "user_id": str(e.actor_id) if e.actor_id is not None else None}
                     for e in audit.access_history(row, g.actor, origin=g.origin)]}


@bp.post("/files/<file_id>/restore")
def restore_file(file_id: str):
    """Undo a delete (within the trash's retention), under the same rules as delete."""
    return one_file(files.restore(g.origin, file_id, actor=g.actor))


@bp.delete("/files/<segment_except('export'):file_id>")
def delete_file(file_id: str):
    """Soft-delete a file (`reason`, optional, is kept in the audit trail)."""
    reason = request.args.get("reason") or (request.form.get("reason") if request.form else None)
    files.delete(g.actor, g.origin, file_id, reason=reason)
    return {"data": True}
