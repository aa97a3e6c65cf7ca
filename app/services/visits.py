"""A visit's clinician and status: who it is with, and whether it is open, completed or cancelled.

Visits are opened by accounts.create_visit (with its dialect signal); this module names the
clinician of a new visit and moves a visit between statuses, audited. Staff of the visit's
clinic only: a patient sees both on their Visits tab but changes neither.
"""
from __future__ import annotations

from flask_babel import gettext
from sqlalchemy import select

from app.errors import BadRequest, NotFound
from app.extensions import db
from app.models import Action, User, Visit, VisitStatus
from app.services import audit, transaction
from app.services.audit import Origin


def provider_for(patient: User, provider: User | None) -> int | None:
    """The id a new visit of `patient` records as its clinician: `provider` when it is staff of
    the patient's clinic, None when no one is named. Raises BadRequest for anyone else."""
    if provider is None:
        return None
    if not provider.is_staff or provider.account_id != patient.account_id:
        raise BadRequest(gettext("%(user)s is not a clinician of %(clinic)s.", user=provider.username,
                                 clinic=patient.account.name))
    return provider.id


def parse_status(value: str | None) -> VisitStatus:
    """A VisitStatus from its name. Raises BadRequest naming the choices."""
    try:
        return VisitStatus((value or "").strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in VisitStatus)
        raise BadRequest(gettext("A visit's status is one of: %(choices)s.", choices=choices)) from None


def set_status(actor: User, visit_id: str, status: VisitStatus, origin: Origin,
               patient: User | None = None) -> Visit:
    """Mark a visit open, completed or cancelled; audited (UPDATE, with the old and new status).

    Args:
        patient: when given, the visit must be this patient's (a chart page's own visits).
    Raises NotFound when the visit is not in the actor's clinic (or not the patient's), or the
    actor is not staff: the same answer as for a visit that does not exist.
    """
    visit = db.session.scalar(select(Visit).where(Visit.public_id == visit_id.lower()))
    if visit is None or not actor.is_staff or visit.account_id != actor.account_id \
            or (patient is not None and visit.patient_id != patient.id):
        raise NotFound(gettext("No such visit."))
    if visit.status != status.value:
        before, visit.status = visit.status, status.value
        audit.record(Action.UPDATE, origin, actor=actor, account_id=visit.account_id, patient_id=visit.patient_id,
                     visit=visit.public_id, status=status.value, was=before)
        transaction.commit()
    return visit
