"""Request rate limits (Flask-Limiter) and the limits store the sign-in throttle shares.

Every request is counted before anything else reads it (before the CSRF check parses a form,
before a token is looked up), in up to three groups, reads (GET, HEAD, OPTIONS) apart from
writes (everything else):

- per API token: any dialect's token endpoint, keyed by a keyed hash of the presented token
  (never the token itself), one count across every dialect (RATELIMIT_API_READ / _WRITE);
- per client address: every request, pages, API and signed links (RATELIMIT_ADDRESS_READ /
  _WRITE; higher, for a clinic behind one NAT);
- per page session: pages with a server-side session, keyed by a hash of the cookie's session
  secret (RATELIMIT_SESSION_READ / _WRITE).

Past a limit the answer is 429 with Retry-After (the window's end) in the door's own shape:
Flask-Limiter raises a werkzeug TooManyRequests that app/errors.py turns into the app's own.
Each group is a Flask-Limiter application limit whose value is read from the config at each
request, so an operator tunes or turns off ("") a group, and Flask-Limiter's own settings
(RATELIMIT_ENABLED, RATELIMIT_STORAGE_URI, RATELIMIT_STRATEGY, RATELIMIT_DEFAULT,
RATELIMIT_HEADERS_ENABLED, …) work as its documentation says.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from urllib.parse import urlparse

from flask import Flask, current_app, request, session
from flask_limiter import ApplicationLimit, Limiter
from limits.errors import ConfigurationError
from limits.storage import Storage, storage_from_string
from werkzeug.exceptions import HTTPException

from app.extensions import LIMITER_KEY, db
from app.services import limit_store  # also registers the database:// storage scheme

#: The limits storage the sign-in throttle counts in (the same place as the rate limits).
STORE_KEY = "chartbox_limits_storage"
READS = ("GET", "HEAD", "OPTIONS")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: A form's own fields beside its files (the upload form has five; an API's metadata a few more).
FORM_FIELDS = 20
#: When no limit says better (the storage could not tell its window's end).
DEFAULT_RETRY_AFTER = 60


def init_ratelimits(app: Flask) -> None:
    """Build this app's Limiter and limits store, and derive the form parser's part cap.

    Raises RuntimeError for a storage or strategy that cannot work, so start-up says so.
    """
    config = app.config
    if config.get("MAX_FORM_PARTS") is None:
        config["MAX_FORM_PARTS"] = int(config["UPLOAD_MAX_FILES_PER_REQUEST"]) + FORM_FIELDS
    uri = config["RATELIMIT_STORAGE_URI"]
    options = _storage_options(app, uri)
    if urlparse(uri).scheme == "database" and config.get("RATELIMIT_STRATEGY") == "moving-window":
        raise RuntimeError("RATELIMIT_STRATEGY moving-window needs redis:// or memory://; database:// "
                           "counts fixed-window and sliding-window-counter.")
    try:
        app.extensions[STORE_KEY] = storage_from_string(uri, **options)
    except ConfigurationError as exc:
        raise RuntimeError(f"RATELIMIT_STORAGE_URI {uri!r} cannot be used: {exc}. Use database:// (the "
                           "default), redis://host:6379/0 or memory://.") from None
    limiter = Limiter(client_address, application_limits=_groups(), storage_options=options)
    limiter.init_app(app)
    app.extensions[LIMITER_KEY] = limiter


def store() -> Storage:
    """The limits storage of the current app (the throttle counts there)."""
    return current_app.extensions[STORE_KEY]


def retry_after(exc: HTTPException) -> int:
    """Seconds until the limit that refused this request lets it through again."""
    limiter = current_app.extensions.get(LIMITER_KEY)
    current = limiter.current_limit if limiter is not None else None
    if current is None:  # a 429 raised by something else; werkzeug's may carry its own
        given = getattr(exc, "retry_after", None)
        return given if isinstance(given, int) and given > 0 else DEFAULT_RETRY_AFTER
    try:
        return max(1, math.ceil(current.window.reset_time - time.time()))
    except Exception as err:  # noqa: BLE001 — whatever the store raised, the 429 still goes out
        current_app.logger.warning("rate limit store could not say when %s resets: %s", current.key, err)
        return DEFAULT_RETRY_AFTER


# -- keys -----------------------------------------------------------------------------------------

def client_address() -> str:
    """The client's address (after ProxyFix, when TRUSTED_PROXIES says to believe a proxy)."""
    return request.remote_addr or "unknown"


def keyed_hash(value: str) -> str:
    """A stable, secret-keyed digest: what goes into a storage key instead of a credential."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def _token() -> str | None:
    """The API token presented to a dialect's token endpoint, if any (not yet checked)."""
    from app.api.dialect import current_dialect  # the doors are built after this module

    dialect = current_dialect()
    if dialect is None or dialect.credential is None or request.endpoint in dialect.public:
        return None
    return dialect.credential(request) or None


def _session_secret() -> str | None:
    """The page session's secret from the (signed) cookie, on pages only."""
    from app.api.dialect import current_dialect
    from app.web.auth import SESSION_KEY

    if current_dialect() is not None:
        return None
    secret = session.get(SESSION_KEY)
    return secret if isinstance(secret, str) and secret else None


def _token_key() -> str:
    return "token:" + keyed_hash(_token() or "")


def _address_key() -> str:
    return "address:" + client_address()


def _session_key() -> str:
    return "session:" + keyed_hash(_session_secret() or "")


# -- groups ---------------------------------------------------------------------------------------

def _setting(name: str, methods: tuple[str, ...] | None = None,
             exempt: Callable[[], bool] | None = None) -> Callable[[], str]:
    """The group's limit for this request, read from the config; "" (no limit) for a request the
    group never counts (another method, or exempt), which Flask-Limiter then skips before it
    parses, builds and checks a limit that cannot apply — a seventh of a small download's time
    with six groups. The groups keep their `methods` and `exempt_when` too, which say the same."""
    def value() -> str:
        if (methods is not None and request.method not in methods) or (exempt is not None and exempt()):
            return ""
        return current_app.config.get(name) or ""
    return value


def _groups() -> list[str | Callable[[], str] | ApplicationLimit]:
    """The six application limits: (key, methods) each, their value read per request."""
    api = "with this API token"
    groups = [
        ("api-read", "RATELIMIT_API_READ", _token_key, READS, lambda: _token() is None,
         f"Too many requests {api}; wait for the time in Retry-After, then try again."),
        ("api-write", "RATELIMIT_API_WRITE", _token_key, WRITES, lambda: _token() is None,
         f"Too many uploads and changes {api}; wait for the time in Retry-After, then try again."),
        ("address-read", "RATELIMIT_ADDRESS_READ", _address_key, READS, None,
         "Too many requests from your address; wait a moment and try again."),
        ("address-write", "RATELIMIT_ADDRESS_WRITE", _address_key, WRITES, None,
         "Too many uploads and changes from your address; wait a moment and try again."),
        ("session-read", "RATELIMIT_SESSION_READ", _session_key, READS, lambda: _session_secret() is None,
         "You are going a little too fast; wait a moment and try again."),
        ("session-write", "RATELIMIT_SESSION_WRITE", _session_key, WRITES, lambda: _session_secret() is None,
         "Too many uploads and changes in a short time; wait a moment and try again."),
    ]
    limits: list[str | Callable[[], str] | ApplicationLimit] = [
        ApplicationLimit(_setting(setting, methods, exempt), key_function=key, scope=scope, methods=methods,
                         exempt_when=exempt, error_message=message)
        for scope, setting, key, methods, exempt, message in groups
    ]
    # Flask-Limiter's own application-wide setting, per client address as its docs describe
    # (it would be ignored otherwise: limits given to the Limiter win over it).
    limits.append(ApplicationLimit(_setting("RATELIMIT_APPLICATION"), key_function=client_address))
    return limits


def _storage_options(app: Flask, uri: str) -> dict:
    """What the storage is built with: the operator's RATELIMIT_STORAGE_OPTIONS, plus the app's
    engine for database:// and short socket timeouts for Redis (a hung Redis must not hang
    every request; it is treated as down)."""
    options = dict(app.config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    scheme = urlparse(uri).scheme
    if scheme == "database":
        with app.app_context():
            options["engine"] = limit_store.counting_engine(db.engine)
    elif scheme.startswith(("redis", "rediss")):
        options.setdefault("socket_timeout", 2)
        options.setdefault("socket_connect_timeout", 2)
    return options
