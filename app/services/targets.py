"""Targets: where a file goes (a patient's chart, one of its visits, or a clinic's holding area).

A value type shared by the upload pipeline (uploads.py) and the listings (files.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from app.models import TargetType, User, Visit


@dataclass(frozen=True)
class Target:
    """Where a file goes: a patient's chart, one of its visits, or a clinic's holding area
    (no chart yet: a file kept, staff only, until the visit it belongs to is opened)."""

    account_id: int
    patient: User | None = None
    visit: Visit | None = None

    @classmethod
    def chart(cls, patient: User, visit: Visit | None = None) -> Target:
        return cls(patient.account_id, patient, visit)

    @classmethod
    def held(cls, account_id: int) -> Target:
        return cls(account_id)

    @property
    def is_held(self) -> bool:
        return self.patient is None

    @property
    def type(self) -> TargetType:
        return TargetType.USER if self.patient is not None and self.visit is None else TargetType.VISIT

    @property
    def id(self) -> int | None:
        if self.visit is not None:
            return self.visit.id
        return self.patient.id if self.patient is not None else None

    @property
    def patient_id(self) -> int | None:
        return self.patient.id if self.patient is not None else None

    @property
    def visit_id(self) -> int | None:
        return self.visit.id if self.visit is not None else None

