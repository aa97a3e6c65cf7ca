"""How both Candid dialects write things: the `{"errorName", "content"}` error envelope,
times, users, images and attachments."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Response, g, jsonify, request

from app.api.candid import image_service
from app.api.candid.models import AttachmentType, CandidAttachment, CandidImage
from app.errors import ChartboxError
from app.models import StoredFile, User
from app.urls import external_url, view_url

# Candid's error names per status. The two services differ only for 404 and 409: the
# pre-encounter service says NotFoundError/VersionConflictError, the main API
# EntityNotFoundError/EntityConflictError (whose content carries the missing `id`).
_NAMES = {
    400: "BadRequestError", 401: "UnauthorizedError", 403: "OrganizationNotAuthorizedError",
    404: "NotFoundError", 405: "MethodNotAllowedError", 409: "VersionConflictError",
    413: "PayloadTooLargeError", 429: "TooManyRequestsError", 503: "ServiceUnavailableError",
}
_MAIN_API_NAMES = {**_NAMES, 404: "EntityNotFoundError", 409: "EntityConflictError"}


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


#: Candid's UserId is a UUID; each Chartbox user gets a stable one derived from its id.
USER_NAMESPACE = uuid.UUID("6f1c2b9e-4d0a-5c3e-9a7b-2e8d4f6a1c30")


def user_uuid(user_id: int) -> str:
    return str(uuid.uuid5(USER_NAMESPACE, f"chartbox-user:{user_id}"))


def user_v2(user: User) -> dict:
    """A Chartbox user as Candid's UserV2 (a human user; no identity-provider links)."""
    first, _, last = user.full_name.rpartition(" ")
    if not first:
        first, last = last, ""
    return {
        "user_id": user_uuid(user.id),
        "user_metadata": {
            "type": "human_user_metadata", "first_name": first, "last_name": last,
            "email": user.email or "",
        },
        "idp_metadata": [],
    }


def signed_url(actor: User, row: CandidImage) -> str:
    """The image's signed URL (PUT or GET its bytes, acting as `actor`), fresh."""
    return external_url("candid_images.image_content", image_id=row.id, **image_service.content_grant(actor, row))


def image_json(row: CandidImage, actor: User) -> dict:
    """An image in Candid's shape; `coverage` and `patient` are left out when not set."""
    body: dict[str, object] = {
        "deactivated": row.deactivated,
        "display_name": row.display_name,
        "file_name": row.file_name,
        "file_type": row.file_type,
        "id": row.id,
        "organization_id": row.account.code,
        "signed_url": signed_url(actor, row),
        "status": row.status,
        "updated_at": iso(row.updated_at),
        "updating_user_id": str(row.updating_user_id),
        "version": row.version,
    }
    if row.coverage_id is not None:
        body["coverage"] = {"id": row.coverage_id, "side": row.coverage_side}
    if row.patient_id is not None:
        patient = {"id": str(row.patient_id)}
        if row.patient_notes is not None:
            patient["notes"] = row.patient_notes
        body["patient"] = patient
    return body


def _base(row: StoredFile, detail: CandidAttachment | None, actor: User) -> dict:
    return {
        "attachment_id": row.public_id,
        "file_name": row.name,
        "description": (detail.description if detail else None) or "",
        "content_type": row.media_type,
        "authed_url": view_url(row, actor),
        # Files added through other doors count as OTHER.
        "attachment_type": detail.attachment_type if detail else AttachmentType.OTHER.value,
    }


def encounter_attachment_json(row: StoredFile, detail: CandidAttachment | None, actor: User) -> dict:
    """An EncounterAttachment; `authed_url` is minted for `actor`."""
    return _base(row, detail, actor) | {
        "encounter_id": row.visit.public_id if row.visit else "",
        "created_at": iso(row.created_at),
        "created_by": user_v2(row.creator),
    }


def charge_capture_attachment_json(row: StoredFile, detail: CandidAttachment | None, actor: User) -> dict:
    """A ChargeCaptureAttachment (no encounter fields: it may have no encounter yet)."""
    return _base(row, detail, actor)
