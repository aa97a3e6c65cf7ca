"""Database models of the core. Inert: no I/O, no commits (services own the unit of work).

A dialect's own tables live beside its routes (app/api/<vendor>/models.py).
"""
from app.models.accounts import Account, ApiToken, User
from app.models.audit import AuditChain, AuditEvent
from app.models.enums import Action, Category, Channel, Role, TargetType, VisitStatus
from app.models.files import FileText, StoredFile
from app.models.ratelimits import RateLimitCounter
from app.models.sessions import EndReason, UserSession
from app.models.visits import Visit

__all__ = [
    "Account",
    "Action",
    "ApiToken",
    "AuditChain",
    "AuditEvent",
    "Category",
    "Channel",
    "EndReason",
    "FileText",
    "RateLimitCounter",
    "Role",
    "StoredFile",
    "TargetType",
    "User",
    "UserSession",
    "Visit",
    "VisitStatus",
]
