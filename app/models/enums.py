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


class Action(StrEnum):
    """What an actor does to a file; also the audit event's verb."""

    UPLOAD = "upload"
    VIEW = "view"
    RENAME = "rename"
    DELETE = "delete"
    RESTORE = "restore"
    SHARE = "share"
    UNSHARE = "unshare"
    PURGE = "purge"
    ATTACH = "attach"  # a file waiting for its visit joined it
    # Metadata records that are not files themselves (Candid pre-encounter images).
    CREATE = "create"
    UPDATE = "update"
    DEACTIVATE = "deactivate"


class Channel(StrEnum):
    """The door a request came through, recorded in every audit event."""

    WEB = "web"
    LINK = "link"  # a signed view link
    VSEE = "vsee"
    CLAROS = "claros"
    TSCHARTS = "tscharts"
    CANDID = "candid"
    CLI = "cli"


class ImageType(StrEnum):
    """tscharts image types (its API spells them exactly so, case-sensitive)."""

    HEADSHOT = "Headshot"
    XRAY = "Xray"
    SURGERY = "Surgery"
    AUDIOGRAM = "Audiogram"


class ImageStatus(StrEnum):
    """Candid pre-encounter image upload states."""

    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    FAILED = "FAILED"


class CoverageSide(StrEnum):
    FRONT = "FRONT"
    BACK = "BACK"


class AttachmentType(StrEnum):
    """Candid encounter attachment types (StoredFile.attachment_type)."""

    DOCUMENTATION = "DOCUMENTATION"
    EOB = "EOB"
    OTHER = "OTHER"
