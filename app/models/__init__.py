"""Database models. Inert: no I/O, no commits (services own the unit of work)."""
from app.models.accounts import Account, ApiToken, LoginFailure, User
from app.models.audit import AuditEvent
from app.models.candid import CandidImage
from app.models.enums import (
    Action, AttachmentType, Category, Channel, CoverageSide, ImageStatus, ImageType, Role, TargetType,
)
from app.models.files import StoredFile
from app.models.visits import Visit

__all__ = [
    "Account", "ApiToken", "LoginFailure", "User", "AuditEvent", "StoredFile", "Visit",
    "Action", "Category", "Channel", "Role", "TargetType",
    "AttachmentType", "CandidImage", "CoverageSide", "ImageStatus", "ImageType",
]
