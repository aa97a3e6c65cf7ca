"""Who may do what to which file: the one place the access rules live (design.md's matrix).

Out of scope (another clinic, another patient's chart) answers NotFound so existence never
leaks; a file the caller may see but not change answers Forbidden. A patient changes only
files they uploaded themselves: what staff add (through any door) is a clinical record, which
the patient may view but never rename, delete or restore.
"""
from __future__ import annotations

from flask_babel import gettext

from app.errors import Forbidden, NotFound
from app.i18n import N_
from app.models import Action, Category, Role, StoredFile, User

_ALL = frozenset(Action)
# SHARE/UNSHARE make a file visible to its patient or hide it (staff only); a profile picture
# is always visible, so it has no such switch.
_ALL_BUT_SHARING = _ALL - {Action.SHARE, Action.UNSHARE}
_VISIBILITY = frozenset({Action.SHARE, Action.UNSHARE})
# A patient's own changes, which never reach a clinical record (see check()).
OWNER_ONLY = frozenset({Action.RENAME, Action.DELETE, Action.RESTORE})
# Actions per (category, role) on a file inside the caller's scope.
RULES: dict[Category, dict[Role, frozenset[Action]]] = {
    Category.USER_DOCUMENT: {
        Role.PATIENT: frozenset({Action.VIEW, Action.UPLOAD, Action.RENAME, Action.DELETE, Action.RESTORE}),
        Role.PROVIDER: frozenset({Action.VIEW, Action.UPLOAD, Action.RENAME, Action.DELETE, Action.RESTORE})
        | _VISIBILITY,
        Role.ADMIN: _ALL,
    },
    Category.INTAKE_ATTACHMENT: {
        Role.PATIENT: frozenset({Action.VIEW, Action.UPLOAD}),
        Role.PROVIDER: frozenset({Action.VIEW, Action.UPLOAD, Action.RENAME, Action.DELETE, Action.RESTORE,
                                  Action.SHARE, Action.UNSHARE}),
        Role.ADMIN: _ALL,
    },
    Category.USER_CONSENT: {
        Role.PATIENT: frozenset({Action.VIEW, Action.UPLOAD}),
        Role.PROVIDER: frozenset({Action.VIEW, Action.UPLOAD, Action.SHARE, Action.UNSHARE}),
        Role.ADMIN: _ALL,
    },
    Category.USER_AVATAR: {
        # A new picture replaces the old, so an old one is never restored (two would be live).
        Role.PATIENT: frozenset({Action.VIEW, Action.UPLOAD, Action.DELETE}),
        Role.PROVIDER: frozenset({Action.VIEW}),
        Role.ADMIN: _ALL_BUT_SHARING - {Action.RESTORE},
    },
}

#: The verb of "You may not … this file." for each action a page offers (translated there).
_VERBS = {Action.VIEW: N_("view"), Action.UPLOAD: N_("upload"), Action.RENAME: N_("rename"),
          Action.DELETE: N_("delete"), Action.RESTORE: N_("restore"), Action.SHARE: N_("share"),
          Action.UNSHARE: N_("unshare")}


def in_scope(actor: User, patient_id: int | None, account_id: int) -> bool:
    """Whether a chart (a patient's files) is within the actor's reach at all.

    No patient (a file held in the clinic for a visit not opened yet): staff only.
    """
    if actor.account_id != account_id:
        return False
    if patient_id is None:
        return actor.is_staff
    return actor.is_staff or patient_id == actor.id


def allowed(actor: User, category: Category, action: Action, *, own_avatar: bool = False) -> bool:
    """Whether the actor's role may take `action` on files of `category` in its scope."""
    if category == Category.USER_AVATAR and own_avatar:
        return action in RULES[category][Role.PATIENT] | RULES[category][actor.role_enum]
    return action in RULES[category][actor.role_enum]


def can(actor: User, file: StoredFile, action: Action) -> bool:
    """True when check() would pass (for flags such as is_deletable)."""
    try:
        _check(actor, file, action)
    except (NotFound, Forbidden):
        return False
    return True


def check(actor: User, file: StoredFile, action: Action) -> None:
    """Raise NotFound (out of scope; deleted, except to restore it) or Forbidden (visible, not
    allowed — a clinical record a patient may not change among them). The error carries what
    the audit trail records about the refusal (the file is real).
    """
    try:
        _check(actor, file, action)
    except (NotFound, Forbidden) as err:
        err.audit = {"file": file, "action": action.value}
        raise


def _check(actor: User, file: StoredFile, action: Action) -> None:
    """The rules behind check().

    Restoring takes a deleted file: a patient restores only what they deleted themselves (what
    they see in their trash); staff anything on the chart their role may delete.
    """
    if action == Action.RESTORE:
        if not file.is_deleted or not in_scope(actor, file.patient_id, file.account_id):
            raise NotFound(gettext("No such file."))
        if actor.is_patient and file.deleted_by_id != actor.id:
            raise NotFound(gettext("No such file."))  # not in their trash: nothing to see
    elif file.is_deleted and actor.role != Role.ADMIN:
        raise NotFound(gettext("No such file."))
    if not in_scope(actor, file.patient_id, file.account_id):
        raise NotFound(gettext("No such file."))
    if actor.is_patient and not file.visible:
        raise NotFound(gettext("No such file."))  # not released to them: as if it did not exist
    own_avatar = file.patient_id == actor.id
    if not allowed(actor, file.category_enum, action, own_avatar=own_avatar):
        raise Forbidden(gettext("You may not %(action)s this file.",
                                action=gettext(_VERBS.get(action, action.value))))
    if actor.is_patient and action in OWNER_ONLY and file.creator_id != actor.id:
        raise Forbidden(gettext("This is a record from your care team: you can view and download it, "
                                "but only the clinic can change or remove it."))


def is_clinical(file: StoredFile) -> bool:
    """Added by staff (any door), not by the patient whose chart holds it."""
    return file.creator_id != file.patient_id


def check_directory(actor: User) -> None:
    """Whether the actor may list their clinic's patients (staff only). Raises Forbidden."""
    if not actor.is_staff:
        raise Forbidden(gettext("Only clinic staff can see the list of patients."))


def check_upload(actor: User, category: Category, patient_id: int | None, account_id: int) -> None:
    """Whether the actor may add a file of `category` to a chart (`patient_id`) of clinic
    `account_id`; no patient means held in the clinic for a visit to come (staff only)."""
    if patient_id is None and actor.account_id == account_id and not actor.is_staff:
        raise Forbidden("Only clinic staff may hold files for a visit that does not exist yet.")
    if not in_scope(actor, patient_id, account_id):
        raise NotFound("No such user.")
    if not allowed(actor, category, Action.UPLOAD, own_avatar=patient_id == actor.id):
        raise Forbidden(f"You may not upload a {category.value} for this user.")
