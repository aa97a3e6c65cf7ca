"""Configuration: defaults -> instance/config.py -> FLASK_* environment -> test overrides."""
from __future__ import annotations

import os
import re
from datetime import timedelta

from flask import Flask

MIB = 1024 * 1024


class Defaults:
    """Embedded defaults: SQLite (WAL) and files under the instance folder."""

    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None  # filled in from the instance path
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    STORAGE_BACKEND = "filesystem"  # or "s3"
    STORAGE_ROOT: str | None = None  # filesystem backend; default <instance>/files
    S3_BUCKET: str | None = None
    S3_ENDPOINT_URL: str | None = None
    S3_REGION: str | None = None
    S3_PREFIX = ""
    # How an original file's bytes leave (app/services/delivery.py; renditions always stream):
    # "stream" (this process sends them), "x-accel" (nginx sends them from STORAGE_ROOT after
    # the app's checks; filesystem only) or "presigned" (the client fetches them from S3 with
    # a short-lived URL; s3 only).
    DOWNLOADS = "stream"
    X_ACCEL_PREFIX = "/_chartbox_blobs/"  # nginx's internal location aliasing STORAGE_ROOT (x-accel)
    OFFLOAD_VERIFIED_FOR = 3600  # s a large blob this process hashed (same inode, size, mtime) is sent unhashed
    PRESIGNED_TTL = 60  # s a presigned GET works: the browser follows the redirect at once
    UPLOAD_MAX_BYTES = 25 * MIB  # 26,214,400 bytes, the largest accepted file
    # Multipart overhead on top of the file; Werkzeug answers 413 past this before reading on.
    MAX_CONTENT_LENGTH = 25 * MIB + MIB
    # Base64 in JSON (a dialect that inlines files) inflates a file by 4/3.
    JSON_UPLOAD_MAX_BYTES = (25 * MIB * 4) // 3 + MIB
    IMAGE_MAX_PIXELS = 60_000_000  # an upload with more pixels is refused before it is decoded
    # A PDF with more pages is refused, counted before any page is touched (touching 100,000
    # pages took 9 s); a page tree whose root's /Count lies is counted only to one past this.
    PDF_MAX_PAGES = 2_000
    PDF_PARSE_TIMEOUT = 10.0  # seconds one parser child (PDF, image or Office check) may run
    PDF_PARSE_MEMORY = 512 * MIB  # bytes of extra address space a parser or renderer child may use
    # Seconds all the checks of one upload may take together (the wait for a decoder slot and
    # every child included); past it the upload is refused (400, "took too long to check").
    VALIDATION_TIMEOUT = 20.0
    # Decoder children (pypdf, Pillow, Office ZIP reads) one worker process runs at once; more
    # wait up to PARSE_WAIT seconds for a slot, then get 503 + Retry-After — so a flood costs
    # bounded CPU and memory.
    PARSE_CONCURRENCY = 2
    PARSE_WAIT = 10.0
    # -- renditions (size= and preview=, app/services/renditions.py) ---------------------------
    # The only boxes ever stored (longest side, px). A size= box is answered from the smallest
    # stored one that covers it, downscaled to fit (and not stored); pages ask for these exactly
    # (128: the list's 64 CSS px thumbnails and avatars on 2x screens; 1280: the PDF viewer).
    RENDITION_SIZES = (128, 320, 640, 1280, 2048)
    RENDER_CONCURRENCY = 2  # renders and downscales at once per worker process; more wait RENDER_WAIT s
    RENDER_WAIT = 5.0  # …then 503 + Retry-After
    RENDER_TIMEOUT = 10.0  # seconds one rendering child may run (its memory: PDF_PARSE_MEMORY)
    PREVIEW_MAX_PAGES = 50  # preview=N renders pages 1..this; later pages answer 400
    # The whole rendition cache is trimmed past this, oldest written first (0: no cap).
    RENDITION_CACHE_MAX_BYTES = 2 * 1024 * MIB
    ZIP_MAX_UNCOMPRESSED = 100 * MIB
    # Characters of a file's text kept for search (text_extract.py); 0 keeps none.
    SEARCH_TEXT_MAX_CHARS = 200_000
    SIGNED_URL_TTL = 3600  # seconds a view link stays valid
    SIGNED_URL_SKEW = 60  # seconds a link's time may lie in the future
    SIGNED_UPLOAD_TTL = 600  # seconds a signed upload URL may still PUT bytes (once)
    # The public address every absolute link is built from (https://files.clinic.example); when
    # unset, the configured SERVER_NAME or the address the server is bound to — never a client's
    # Host header.
    PUBLIC_URL: str | None = None
    TRASH_RETENTION_DAYS = 30  # a deleted file can be restored this long; `files purge` after
    ORPHAN_GRACE_HOURS = 24  # debris (orphan blobs, temp and partial files) younger than this is kept
    # Downloads up to this size are checked against their sha256 before the first byte is sent
    # (a clear error instead of a broken transfer); larger ones are checked as they stream.
    VERIFY_BEFORE_SEND_BYTES = 1 * MIB
    API_PAGE_SIZE = 100
    API_PAGE_SIZE_MAX = 500
    WEB_PAGE_SIZE = 25
    # -- rate limits, sign-in throttle, quotas, per-request caps (app/ratelimits.py) -----------
    # Flask-Limiter's own settings (RATELIMIT_*) work as its documentation says. Counts live in
    # RATELIMIT_STORAGE_URI: database:// (the app's database, shared by every worker and host),
    # redis://host:6379/0 (install .[redis]) or memory:// (per process). If the store fails,
    # requests are not refused: limits fall back to per-process memory and the outage is logged.
    RATELIMIT_ENABLED = True  # False turns the request rate limits off (not the sign-in throttle)
    RATELIMIT_STORAGE_URI = "database://"
    RATELIMIT_STRATEGY = "fixed-window"  # or sliding-window-counter (moving-window: not database://)
    RATELIMIT_KEY_PREFIX = "chartbox"
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # One group per key and kind of request (GET/HEAD/OPTIONS read, anything else writes), as
    # limits strings ("600 per minute; 30 per second"); "" turns a group off.
    RATELIMIT_API_READ = "600 per minute"  # per API token, every dialect together
    RATELIMIT_API_WRITE = "60 per minute"
    RATELIMIT_ADDRESS_READ = "3000 per minute"  # per client address, everything (a clinic's NAT)
    RATELIMIT_ADDRESS_WRITE = "600 per minute"
    RATELIMIT_SESSION_READ = "600 per minute"  # per signed-in page session (pages upload one file a request)
    RATELIMIT_SESSION_WRITE = "120 per minute"
    # Sign-in (every door): password checks per username+address, per username from anywhere,
    # and distinct failing usernames per address (password spraying); 0 turns one off.
    LOGIN_ATTEMPTS = 10  # per username+address within LOGIN_WINDOW
    LOGIN_WINDOW = 300  # seconds
    LOGIN_USERNAME_ATTEMPTS = 50  # per username, from any address, within LOGIN_WINDOW
    LOGIN_SPRAY_USERNAMES = 20  # distinct usernames failing from one address within LOGIN_SPRAY_WINDOW
    LOGIN_SPRAY_WINDOW = 900  # seconds
    # Bytes kept per patient (what they uploaded) and per clinic; deleted files count until they
    # are purged (their bytes are still on disk). None turns a quota off.
    USER_QUOTA_BYTES: int | None = 2 * 1024 * MIB
    CLINIC_QUOTA_BYTES: int | None = 200 * 1024 * MIB
    UPLOAD_MAX_FILES_PER_REQUEST = 20  # files in one multipart request
    # Multipart parts the parser reads before answering 413; None: UPLOAD_MAX_FILES_PER_REQUEST
    # plus room for a form's own fields. A text field may hold MAX_FORM_MEMORY_SIZE bytes.
    MAX_FORM_PARTS: int | None = None
    MAX_FORM_MEMORY_SIZE = 500_000
    PREFERRED_URL_SCHEME = "http"
    # Behind a load balancer: how many proxies' X-Forwarded-For/-Proto/-Host to believe, so
    # signed links carry the public https address and the audit trail the client's address.
    TRUSTED_PROXIES = 0
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # None: Secure (sent over HTTPS only) when PUBLIC_URL starts with https://, else not (a
    # plain-http development server would otherwise never get its cookie back). True/False wins.
    SESSION_COOKIE_SECURE: bool | None = None
    # A signed-in page session ends after this long without a request, and this long after
    # sign-in whatever happens (the server-side record decides; the cookie only carries its secret).
    SESSION_IDLE_MINUTES = 15
    SESSION_MAX_HOURS = 12


def load_config(app: Flask, test_config: dict | None) -> None:
    """Fill app.config in the agreed order and check it."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env()
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
            app.instance_path, "chartbox.db"
        )
    if not app.config.get("STORAGE_ROOT"):
        app.config["STORAGE_ROOT"] = os.path.join(app.instance_path, "files")
    if (app.config["SQLALCHEMY_ENGINE_OPTIONS"] is Defaults.SQLALCHEMY_ENGINE_OPTIONS
            and str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")):
        # A local file never drops a connection: the ping would be one more statement per request.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
    check_config(app)
    _session_cookie_settings(app)


def _session_cookie_settings(app: Flask) -> None:
    """Derive the cookie settings that follow other settings, once every source is read."""
    config = app.config
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = str(config.get("PUBLIC_URL") or "").lower().startswith("https://")
    # Flask refuses a session cookie signed longer ago than this, so even a copied cookie dies
    # with the longest session; the record's own checks come on top.
    config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=config["SESSION_MAX_HOURS"])


def check_config(app: Flask) -> None:
    """Stop start-up with a clear message when the configuration cannot work."""
    if not app.config.get("SECRET_KEY"):
        if app.debug or app.testing:
            app.config["SECRET_KEY"] = "dev-only-not-secret"
        else:
            raise RuntimeError(
                "SECRET_KEY is not set. Set FLASK_SECRET_KEY in the environment or "
                "SECRET_KEY in instance/config.py (`make run` writes one for you)."
            )
    backend = app.config["STORAGE_BACKEND"]
    if backend not in ("filesystem", "s3"):
        raise RuntimeError(f"STORAGE_BACKEND must be 'filesystem' or 's3', not {backend!r}.")
    if backend == "s3" and not app.config.get("S3_BUCKET"):
        raise RuntimeError("STORAGE_BACKEND is 's3' but S3_BUCKET is not set.")
    _check_downloads(app.config, backend)
    for name in ("SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS"):
        value = app.config[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise RuntimeError(f"{name} must be a positive number, not {value!r}.")
    if app.config["UPLOAD_MAX_BYTES"] > app.config["MAX_CONTENT_LENGTH"]:
        app.config["MAX_CONTENT_LENGTH"] = app.config["UPLOAD_MAX_BYTES"] + MIB


_X_ACCEL_PREFIX = re.compile(r"^/[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*/$")


def _check_downloads(config, backend: str) -> None:
    """DOWNLOADS must name a way the configured storage can send bytes (delivery.py)."""
    downloads = config["DOWNLOADS"]
    needs = {"stream": None, "x-accel": "filesystem", "presigned": "s3"}
    if downloads not in needs:
        raise RuntimeError(f"DOWNLOADS must be 'stream', 'x-accel' or 'presigned', not {downloads!r}.")
    if needs[downloads] not in (None, backend):
        raise RuntimeError(f"DOWNLOADS={downloads!r} needs STORAGE_BACKEND={needs[downloads]!r}, "
                           f"not {backend!r} (x-accel: nginx reads STORAGE_ROOT; presigned: S3 sends).")
    # It goes into a response header and must match an nginx location exactly.
    if not isinstance(config["X_ACCEL_PREFIX"], str) or not _X_ACCEL_PREFIX.match(config["X_ACCEL_PREFIX"]):
        raise RuntimeError(f"X_ACCEL_PREFIX must look like '/_chartbox_blobs/', not {config['X_ACCEL_PREFIX']!r}.")
    for name, low, high in (("PRESIGNED_TTL", 1, 7 * 24 * 3600), ("OFFLOAD_VERIFIED_FOR", 0, None)):
        value = config[name]  # S3 signs for at most 7 days
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            raise RuntimeError(f"{name} must be a whole number of seconds from {low}"
                               f"{f' to {high}' if high else ''}, not {value!r}.")
