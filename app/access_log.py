"""gunicorn's logs without bearer secrets: signed links' `auth_code`, API tokens, cookies.

A signed link is a bearer credential (some even accept a PUT of new bytes), so a log line
that holds one hands the file to whoever reads the log. `MaskingLogger` (gunicorn.conf.py's
`logger_class`) writes every access-log atom through the pure functions below:

- the query string (`q`), the request line (`r`), the path (`U`) and every URL-like value
  (Referer, Location, Link, the environ's RAW_URI/QUERY_STRING…) keep their parameter names
  and every other parameter, but a secret parameter's value becomes `***`:
  `GET /files/view/abc?auth_code=***&time=1767225600 HTTP/1.1` still tells an admin which
  file and which `time`. A parameter is secret when its name, percent-decoded and compared
  without case, is one of SECRET_PARAMS or contains one of SECRET_WORDS;
- a secret request or response header (SECRET_HEADERS, also as environ `HTTP_*` keys) is
  `***` whole, so `%({authorization}i)s` in a log format can never print a token;
- `u` (the user gunicorn decodes from HTTP Basic auth) is `***` when present: Chartbox never
  uses Basic auth, so whatever a client put there was sent by mistake and may be a token.

A filter on both gunicorn loggers masks every finished message too (access lines again;
"Invalid request … 'GET /…?auth_code=…'", "Error handling request /…?…" and tracebacks
through `mask_text`), so a secret cannot reach the log along any of gunicorn's own
paths. (What the app writes itself goes through Flask's logger and names paths, never queries.)

This module needs only gunicorn and the standard library: gunicorn's master imports it.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote_plus

from gunicorn.glogging import Logger, SafeAtoms

MASK = "***"

#: Query parameters whose value is a credential (compared percent-decoded, without case,
#: `-` read as `_`).
SECRET_PARAMS = frozenset({
    "auth_code", "token", "access_token", "api_key", "apikey", "key", "signature", "sig", "password",
})
#: A parameter whose name contains one of these is secret too (`refresh_token`,
#: `client_secret`, `X-Amz-Signature`, `csrf_token`…).
SECRET_WORDS = ("auth_code", "token", "secret", "password", "passwd", "signature", "api_key", "apikey")
#: Headers whose value is a credential, lower case (environ keys: `HTTP_` + upper case, `_`).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-apitoken", "x-api-key", "x-auth-token",
    "x-csrftoken", "x-csrf-token", "cookie", "set-cookie",
})
_SECRET_HEADER_KEYS = frozenset(name.replace("-", "_") for name in SECRET_HEADERS)

_SEPARATORS = re.compile(r"([&;])")
# `name=value` in free text; `=`, `&`, `;` and `#` may be percent-encoded (a link inside a link).
# A name starts the text or follows a delimiter, so `x%3Fkey%3D…` finds `key`, never `3Fkey`.
_PARAM_IN_TEXT = re.compile(
    r"(?:^|(?<=[?&;#\s\"'<>(,:/|{[])|(?<=%3[fFbB])|(?<=%2[36]))"
    r"(?P<name>(?:(?!%3[dDfFbB]|%2[36])[^\s=&;?#\"'<>])+)(?P<eq>=|%3[dD])"
    r"(?P<value>(?:(?!%2[36]|%3[bB])[^\s&;#\"'<>])*)")
# `Authorization: Bearer …`, `COOKIE session=…` in free text (gunicorn's "Invalid HTTP Header").
_HEADER_IN_TEXT = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization|\bx-apitoken|\bx-api-key|\bx-auth-token|\bx-csrf-?token"
    r"|\bset-cookie|\bcookie)(?P<sep>\s*:\s*|\s+)(?P<value>[^\s'\"][^\r\n'\"]*)")
# What a nested (decoded) value may keep unencoded when it is written back masked.
_NESTED_SAFE = "/:?=*,@!$'()~"
_URL_ATOMS = frozenset({"r", "U", "f"})


def _decoded(text: str, rounds: int = 3) -> str:
    """`text` percent- (and `+`-) decoded until it stops changing (double encoding too)."""
    for _ in range(rounds):
        plain = unquote_plus(text, errors="replace")
        if plain == text:
            break
        text = plain
    return text


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's value is a credential: `auth_code`, `AUTH_CODE`,
    `auth%5Fcode`, `x-api-key`, `refresh_token`… (see SECRET_PARAMS and SECRET_WORDS)."""
    plain = _decoded(name).strip().lower().replace("-", "_")
    plain = re.split(r"[?&;#/\s]", plain)[-1]  # `x?auth_code` as free text finds it
    plain = plain.removesuffix("[]")
    if not plain:
        return False
    return plain in SECRET_PARAMS or any(word in plain for word in SECRET_WORDS)


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential; `name` as sent (`X-ApiToken`), as gunicorn
    keys its atoms (`x-apitoken`) or as an environ key (`HTTP_X_APITOKEN`)."""
    key = name.strip().lower().replace("-", "_")
    return key in _SECRET_HEADER_KEYS or key.removeprefix("http_") in _SECRET_HEADER_KEYS


def mask_header(name: str, value: str) -> str:
    """A header's value as it may be logged: `***` for a secret header; any other keeps all
    but the values of secret parameters in it (a Referer or Location that is a signed link)."""
    if is_secret_header(name):
        return MASK if value and value != "-" else value
    return mask_params(value)


def _mask_param(part: str) -> str:
    """One `name=value` of a query string."""
    name, eq, value = part.partition("=")
    if not eq:
        plain = _decoded(part)
        if "=" in plain and is_secret_param(plain.partition("=")[0]):  # `auth_code%3D…`
            return plain.partition("=")[0] + "=" + MASK
        return part
    if is_secret_param(name):
        return name + "=" + MASK if value else part
    inner = _decoded(value)
    masked = mask_params(inner)  # a link carried inside a parameter (`next=/files/view/…%3Fauth_code%3D…`)
    return part if masked == inner else name + "=" + quote(masked, safe=_NESTED_SAFE)


def mask_query(query: str) -> str:
    """A query string with every secret parameter's value replaced by `***`; the names, the
    order, the separators (`&`, `;`) and every other parameter are kept as they were."""
    if not query:
        return query
    return "".join(part if part in ("&", ";") else _mask_param(part) for part in _SEPARATORS.split(query))


def mask_url(url: str) -> str:
    """A URL (absolute, a path, or a request target) with its query (and fragment) masked."""
    if not url:
        return url
    base, question, rest = url.partition("?")
    if not question:
        base, hash_, fragment = url.partition("#")
        return mask_params(base) + (hash_ + mask_query(fragment) if hash_ else "")
    query, hash_, fragment = rest.partition("#")
    return mask_params(base) + "?" + mask_query(query) + (hash_ + mask_query(fragment) if hash_ else "")


def mask_request_line(line: str) -> str:
    """`METHOD target PROTOCOL` with the target masked (anything else: masked as text)."""
    if not line:
        return line
    parts = line.split(" ")
    if len(parts) == 3:
        return f"{parts[0]} {mask_url(parts[1])} {parts[2]}"
    return mask_params(line)


def _mask_text_param(match: re.Match[str]) -> str:
    if match["value"] not in ("", "-", MASK) and is_secret_param(match["name"]):  # "-": gunicorn's "none"
        return match["name"] + match["eq"] + MASK
    return match[0]


def _mask_text_header(match: re.Match[str]) -> str:
    return match["name"] + match["sep"] + MASK


def mask_params(text: str) -> str:
    """Text (a header value, a path, a log line) with the value of every secret `name=value`
    in it masked, also where `=` or the separators are percent-encoded (a link in a link)."""
    if not text or ("=" not in text and "%3" not in text):
        return text
    return _PARAM_IN_TEXT.sub(_mask_text_param, text)


def mask_text(text: str) -> str:
    """A free-text log message: `mask_params`, and every `Authorization: …`-like header's
    value masked (gunicorn's "Invalid HTTP Header: 'Authorization Bearer …'")."""
    if not text:
        return text
    return _HEADER_IN_TEXT.sub(_mask_text_header, mask_params(text))


def _mask_environ(key: str, value: str) -> str:
    """An environ variable (`{…}e` atoms; `key` lower case)."""
    if is_secret_header(key):
        return MASK if value else value
    if key == "query_string":
        return mask_query(value)
    if key in ("raw_uri", "request_uri", "path_info", "script_name"):
        return mask_url(value)
    return mask_params(value)


def mask_atoms(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms (glogging.Logger.atoms()) safe to format: see the module doc."""
    return {key: mask_atom(key, value) for key, value in atoms.items()}


def mask_atom(key: str, value: Any) -> Any:
    """One access-log atom (`key` as gunicorn names it, `{…}` ones lower case), safe to format."""
    if not isinstance(value, str):
        return value
    if key == "r":
        return mask_request_line(value)
    if key == "q":
        return mask_query(value)
    if key in _URL_ATOMS:
        return mask_url(value)
    if key == "u":
        return MASK if value and value != "-" else value
    if key.startswith("{") and key.endswith(("}i", "}o")):
        return mask_header(key[1:-2], value)
    if key.startswith("{") and key.endswith("}e"):
        return _mask_environ(key[1:-2], value)
    return mask_params(value)


class MaskedAtoms(SafeAtoms):
    """gunicorn's atoms wrapper (`atoms_wrapper_class`), masking each atom as the log format
    reads it, then escaping its quotes as SafeAtoms does. A format names a dozen of the forty-odd
    atoms (every header and environ key is one): masking them all up front was a tenth of a
    small download's time (BENCHMARKS.md). Only the format reads them: MaskingFilter drops the
    record's arguments once the message is made."""

    def __init__(self, atoms: dict[str, Any]):
        dict.__init__(self, atoms)

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            key = key.lower()
        if not dict.__contains__(self, key):
            return "-"
        value = mask_atom(key, dict.__getitem__(self, key))
        return value.replace('"', '\\"') if isinstance(value, str) else value


class MaskingFilter(logging.Filter):
    """Masks a record's final message (and its traceback): with `mask_text`, or for access
    lines (whose atoms are masked already) with `mask_params` alone, which never touches a
    search for "cookie jar"."""

    _formatter = logging.Formatter()

    def __init__(self, free_text: bool = True):
        super().__init__()
        self.mask = mask_text if free_text else mask_params

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as it is, by the handler
            return True
        masked = self.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True


class MaskingLogger(Logger):
    """gunicorn's logger, with secrets masked in the access log's atoms and in every message of
    the error and access logs (`logger_class = "app.access_log.MaskingLogger"`)."""

    atoms_wrapper_class = MaskedAtoms
    error_filter = MaskingFilter(free_text=True)
    access_filter = MaskingFilter(free_text=False)

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # runs again on a config reload: add each filter once
        for log, masking in ((self.error_log, self.error_filter), (self.access_log, self.access_filter)):
            if not any(isinstance(f, MaskingFilter) for f in log.filters):
                log.addFilter(masking)

