"""Named values used across the models and services (never bare strings)."""
from enum import StrEnum


class Role(StrEnum):
    PATIENT = "patient"
    PROVIDER = "provider"
    ADMIN = "admin"


class Category(StrEnum):
    USER_DOCUMENT = "user_document"
    INTAKE_ATTACHMENT = "intake_attachment"
    USER_CONSENT = "user_consent"
    USER_AVATAR = "user_avatar"


class TargetType(StrEnum):
    USER = "user"
    VISIT = "visit"


class VisitStatus(StrEnum):
    OPEN = "open"  # opened, files still being collected
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What an actor does (to a file, mostly); also the audit event's verb."""

    UPLOAD = "upload"
    VIEW = "view"
    RENAME = "rename"
    DELETE = "delete"
    RESTORE = "restore"
    SHARE = "share"
    UNSHARE = "unshare"
    PURGE = "purge"
    ATTACH = "attach"  # a file waiting for its visit joined it
    EXPORT = "export"  # taken home in an archive of the whole chart
    # Metadata records a dialect keeps beside files (e.g. an image's versioned description).
    CREATE = "create"
    UPDATE = "update"
    DEACTIVATE = "deactivate"
    # Not about one file: who signed in and out, what they listed, what was refused, what an
    # administrator ran.
    LIST = "list"
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    SESSION_END = "session_end"  # timed out or revoked
    TOKEN_CREATE = "token_create"
    TOKEN_REVOKE = "token_revoke"
    LINK = "link"  # a signed link was handed out
    REFUSED = "refused"  # 401/403/404 on a real object, or a rejected signed link
    COMMAND = "command"  # an administrator's CLI command


class Channel(StrEnum):
    """The core's doors, recorded in every audit event. Each API dialect declares its own
    channel name (app/api/dialect.py), so audit channels are plain strings."""

    WEB = "web"
    LINK = "link"  # a signed view link
    CLI = "cli"
    FHIR = "fhir"  # the HL7 FHIR R4 door (app/api/fhir/): a standard, not one vendor's API
