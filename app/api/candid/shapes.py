"""What both Candid dialects share: `Authorization: Bearer`, the `{"errorName", "content"}`
error envelope, and how times and users are written. The endpoints live in
candid_images.py (pre-encounter images) and candid_attachments.py (encounter attachments).
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, g, jsonify, request

from app.api.auth import bearer, principal
from app.errors import ChartboxError
from app.models import Channel, User
from app.services.audit import Origin

# Candid's error names per status. The two services differ only for 404 and 409: the
# pre-encounter service says NotFoundError/VersionConflictError, the main API
# EntityNotFoundError/EntityConflictError (whose content carries the missing `id`).
_NAMES = {
    400: "BadRequestError", 401: "UnauthorizedError", 403: "OrganizationNotAuthorizedError",
    404: "NotFoundError", 405: "MethodNotAllowedError", 409: "VersionConflictError",
    413: "PayloadTooLargeError", 429: "TooManyRequestsError",
}
_MAIN_API_NAMES = {**_NAMES, 404: "EntityNotFoundError", 409: "EntityConflictError"}


def authenticate() -> None:
    """before_request: the Bearer token's user becomes g.actor (401 without one)."""
    g.actor = principal(bearer(request, "Bearer"))


def origin() -> Origin:
    return Origin.of(request, Channel.CANDID)


def _render(err: ChartboxError, names: dict[int, str], content: dict) -> Response:
    resp = jsonify(errorName=names.get(err.status, "InternalError"), content=content)
    resp.status_code = err.status
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="chartbox"'
    return resp


def render_image_error(err: ChartboxError) -> Response:
    """Pre-encounter service: content is ErrorBase4Xx {message} plus e.g. latest_version."""
    return _render(err, _NAMES, {"message": err.message, **err.extra})


def render_attachment_error(err: ChartboxError) -> Response:
    """Main API: EntityNotFoundError's content names the id that was not found."""
    content = {"message": err.message, **err.extra}
    if err.status == 404:
        args = request.view_args or {}
        missing = g.get("attachment_id") or args.get("encounter_id") or args.get("external_id")
        content.setdefault("id", missing or "")
    return _render(err, _MAIN_API_NAMES, content)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second, as Candid's examples write it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_v2(user: User) -> dict:
    """A Chartbox user as Candid's UserV2 (a human user; no identity-provider links)."""
    first, _, last = user.full_name.rpartition(" ")
    if not first:
        first, last = last, ""
    return {
        "user_id": str(user.id),
        "user_metadata": {
            "type": "human_user_metadata", "first_name": first, "last_name": last,
            "email": user.email or "",
        },
        "idp_metadata": [],
    }
