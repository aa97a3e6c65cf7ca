"""Signed, expiring links: HMAC-SHA256 over purpose, object id and time with the app secret."""
from __future__ import annotations

import hashlib
import hmac
import re
import time as _time
from typing import Any

from flask import current_app

from app.errors import Forbidden

VIEW = "view"  # GET the bytes of a file (every dialect's download link, the pages' thumbnails)
_TIME = re.compile(r"^[0-9]{1,12}$")
_CODE = re.compile(r"^[0-9a-f]{64}$")


def _digest(purpose: str, object_id: str, stamp: int) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    message = f"chartbox-link|{purpose}|{object_id}|{stamp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(purpose: str, object_id: str, now: int | None = None) -> tuple[str, int]:
    """Mint (auth_code, time) for a link to `object_id` usable for `purpose`."""
    stamp = int(_time.time()) if now is None else now
    return _digest(purpose, object_id, stamp), stamp


def younger_than(stamp: str | None, seconds: int, now: int | None = None) -> bool:
    """Whether a link minted at `stamp` (already verified) is at most `seconds` old."""
    current = int(_time.time()) if now is None else now
    return bool(stamp and _TIME.match(stamp)) and current - int(stamp or 0) <= seconds


def view_grant(public_id: str, user_id: int) -> dict[str, Any]:
    """The query parameters of a fresh view link to a file, minted for a user: {"by",
    "auth_code", "time"}. The user is inside the signature, so every use of the link is
    attributed to them and stops working when they may no longer see the file."""
    code, stamp = sign(VIEW, view_subject(public_id, user_id))
    return {"by": user_id, "auth_code": code, "time": stamp}


def view_subject(public_id: str, user_id: int | str) -> str:
    return f"{public_id}|{user_id}"


def verify(purpose: str, object_id: str, auth_code: str | None, stamp: str | None,
           now: int | None = None) -> None:
    """Accept a link only if its code matches and its time lies within the TTL.

    Raises:
        Forbidden: missing, malformed, tampered or expired code or time.
    """
    if not auth_code or not stamp or not _TIME.match(stamp):
        raise Forbidden("This link is not valid.")
    if not _CODE.match(auth_code.lower()):
        raise Forbidden("This link is not valid.")
    expected = _digest(purpose, object_id, int(stamp))
    if not hmac.compare_digest(expected.encode(), auth_code.lower().encode()):
        raise Forbidden("This link is not valid.")
    current = int(_time.time()) if now is None else now
    age = current - int(stamp)
    if age > current_app.config["SIGNED_URL_TTL"] or age < -current_app.config["SIGNED_URL_SKEW"]:
        raise Forbidden("This link has expired; ask for a fresh one.")
