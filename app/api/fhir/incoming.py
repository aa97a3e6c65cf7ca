"""What a client POSTs, read: a DocumentReference or a Binary resource, into plain values the
routes hand to the file service. Only the elements this door stores are read; a malformed one
is a 400 `invalid` naming it."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from app.api import params
from app.api.fhir.resources import CATEGORY_SYSTEM
from app.api.fhir.search import reference_id
from app.errors import BadRequest
from app.models import Category
from app.services.validation import TYPES

_SPACE = re.compile(r"\s+")
#: Types a client may name for bytes it does not label (the bytes then say what they are).
UNLABELLED = ("", "application/octet-stream")


@dataclass(frozen=True)
class NewDocument:
    """A DocumentReference to create: where, what, and its bytes or the Binary holding them."""

    subject: str | None  # the Patient id referenced
    encounter: str | None  # the visit UUID referenced
    category: Category | None
    title: str | None
    content_type: str
    data: bytes | None
    binary: str | None  # the id of a Binary created before


def resource(body: dict, kind: str) -> dict:
    if body.get("resourceType") != kind:
        raise BadRequest(f"The body must be a {kind} resource (resourceType \"{kind}\").")
    return body


def _reference(value: Any, kind: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        raise BadRequest(f"{name} must be a reference like {{\"reference\": \"{kind}/<id>\"}}.")
    return reference_id(value["reference"], kind)


def decode(data: Any, name: str) -> bytes:
    """base64Binary (whitespace allowed, as in any base64 text) to bytes. Raises BadRequest."""
    if not isinstance(data, str):
        raise BadRequest(f"{name} must be base64 text.")
    try:
        return base64.b64decode(_SPACE.sub("", data), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not valid base64.") from None


def media_type(value: Any, name: str = "contentType") -> str:
    """A declared content type, without parameters, lower-case ('' when absent)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a MIME type such as application/pdf.")
    return value.split(";", 1)[0].strip().lower()


def upload_name(title: str | None, content_type: str) -> str:
    """The name to upload under: the title, ending in the declared type's extension when it has
    none, so validation refuses bytes that are not what the client declared (as a name's
    extension is checked on every door)."""
    name = (title or "").strip() or "document"
    if content_type in UNLABELLED:
        return name
    if content_type not in TYPES:
        accepted = ", ".join(sorted(TYPES))
        raise BadRequest(f"Files of type {content_type} are not accepted; send one of: {accepted}.")
    extensions = TYPES[content_type][0]
    return name if name.rsplit(".", 1)[-1].lower() in extensions else f"{name}.{extensions[0]}"


def document(body: dict) -> NewDocument:
    """A posted DocumentReference. Raises BadRequest."""
    resource(body, "DocumentReference")
    content = body.get("content")
    if not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict) \
            or not isinstance(content[0].get("attachment"), dict):
        raise BadRequest("content must hold exactly one attachment.")
    found = content[0]["attachment"]
    data = found.get("data")
    url = found.get("url")
    if (data is None) == (url is None):
        raise BadRequest("The attachment needs either data (base64) or url (Binary/<id>), not both.")
    binary = None
    if url is not None:
        if not isinstance(url, str):
            raise BadRequest("attachment.url must be a reference like Binary/<id>.")
        binary = reference_id(url, "Binary")
    title = found.get("title")
    if title is not None and not isinstance(title, str):
        raise BadRequest("attachment.title must be text.")
    encounters = (body.get("context") or {}).get("encounter") if isinstance(body.get("context"), dict) else None
    if encounters is not None and (not isinstance(encounters, list) or len(encounters) != 1):
        raise BadRequest("context.encounter must list one encounter.")
    return NewDocument(
        subject=_reference(body.get("subject"), "Patient", "subject"),
        encounter=_reference(encounters[0], "Encounter", "context.encounter") if encounters else None,
        category=_category(body.get("category")), title=title,
        content_type=media_type(found.get("contentType"), "attachment.contentType"),
        data=decode(data, "attachment.data") if data is not None else None, binary=binary)


def _category(value: Any) -> Category | None:
    """Chartbox's category among the codings (others, such as US Core's, are accepted and
    not stored: a clinical note is whatever staff add)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise BadRequest("category must be a list of CodeableConcepts.")
    for concept in value:
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") == CATEGORY_SYSTEM:
                try:
                    return Category(str(coding.get("code")))
                except ValueError:
                    raise BadRequest(f"Unknown category {coding.get('code')!r}; use one of: "
                                     f"{', '.join(c.value for c in Category)}.") from None
    return None


def binary(body: dict) -> tuple[str, bytes, str | None]:
    """A posted Binary resource: (content type, bytes, the Patient id of its security context)."""
    resource(body, "Binary")
    if body.get("data") is None:
        raise BadRequest("The Binary needs its bytes in data (base64).")
    return (media_type(body.get("contentType")), decode(body["data"], "data"),
            _reference(body.get("securityContext"), "Patient", "securityContext"))


def patient_id(ident: str | None) -> int:
    """A Patient id as a row id; 0 (found nowhere) for text that cannot name one."""
    return params.row_id(ident or "") or 0
