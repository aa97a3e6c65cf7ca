"""Request text to typed values, for every door: one set of parsers, one set of bounds.

Each parser takes the raw text (or decoded JSON value) and the field's name as the door spells
it, and raises BadRequest naming that field; none of them ever raises anything else.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from app.errors import BadRequest
from app.models import TargetType
from app.models.base import MAX_ID

_DIGITS = re.compile(r"^[0-9]{1,19}$")  # ASCII only: '²' and '٣' pass str.isdigit()
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PAGE = 1_000_000
MAX_EXTERNAL_INT = 2**63 - 1  # BIGINT: a client's own ids (tscharts clinic/station)


def row_id(value: Any) -> int | None:
    """A row id (1..MAX_ID) from text or an int; None when it cannot name a row (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _DIGITS.match(value):
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def is_number(value: str) -> bool:
    """ASCII digits only, at most 19 of them."""
    return bool(_DIGITS.match(value))


def uuid(value: Any) -> str | None:
    """A canonical (lower-case) UUID from text, or None."""
    return value.lower() if isinstance(value, str) and _UUID.match(value) else None


def integer(value: Any, name: str, *, maximum: int = MAX_EXTERNAL_INT) -> int:
    """A non-negative integer given as a JSON number or a numeric string. Raises BadRequest."""
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise BadRequest(f"{name} must be an integer id.")
    return value


def positive(value: str | None, name: str, *, maximum: int = MAX_PAGE) -> int | None:
    """An optional whole number from 1 (a page, a page size); None when absent. Raises BadRequest."""
    if value is None or value == "":
        return None
    if not _DIGITS.match(value) or not 1 <= int(value) <= maximum:
        raise BadRequest(f"{name} must be a whole number from 1.")
    return int(value)


def flag(value: str | None, *, strict: bool = False, name: str = "flag") -> bool:
    """A boolean query flag. Lenient: anything but 0/false/no/off is true. Strict: exactly
    `true` or `false` (tscharts), else BadRequest."""
    if value is None:
        return False
    if strict:
        if value not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false.")
        return value == "true"
    return value.strip().lower() not in ("0", "false", "no", "off")


def json_body(*, required: bool = True) -> Any:
    """The request body decoded as JSON whatever its Content-Type; None when absent or
    malformed and not `required`. Raises BadRequest (malformed, or nested too deeply)."""
    data = request.get_data(cache=True)
    if not data.strip():
        if required:
            raise BadRequest("The body must be a JSON object.")
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        if required:
            raise BadRequest("The body must be a JSON object.") from None
        return None


def json_object(*, required: bool = True) -> dict:
    """The body as a JSON object (see json_body); {} when absent and not `required`."""
    body = json_body(required=required)
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        if required:
            raise BadRequest("The body must be a JSON object.")
        return {}
    return body


def form_field(*names: str) -> str | None:
    """A form field under any of its spellings (dotted, or PHP-style brackets)."""
    for name in names:
        value = request.form.get(name)
        if value is not None:
            return value
    return None


def target(kind: str | None, ident: str | None, *, type_field: str = "target type",
           id_field: str = "target id") -> tuple[TargetType, int | str | None]:
    """A (type, id) pair naming a chart or a visit, for files.resolve_target.

    An empty type means a user; a user without id (or VSee's "-") means the caller. User ids
    are numbers; visit ids are numbers or UUIDs. A number that cannot name a row becomes 0
    (found nowhere). Raises BadRequest naming the door's own field names.
    """
    ident = (ident or "").strip()
    kind = (kind or "").strip() or TargetType.USER.value
    if kind not in (TargetType.USER, TargetType.VISIT):
        raise BadRequest(f"{type_field} must be 'user' or 'visit'.")
    if kind == TargetType.USER:
        if not ident or ident == "-":
            return TargetType.USER, None
        if not is_number(ident):
            raise BadRequest("A user target id must be a number.")
        return TargetType.USER, row_id(ident) or 0
    if not ident:
        raise BadRequest(f"A visit target needs {id_field}.")
    return TargetType.VISIT, (row_id(ident) or 0) if is_number(ident) else ident
