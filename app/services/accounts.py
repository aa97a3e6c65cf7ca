"""Accounts (clinics), users, passwords, API tokens and visits."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from blinker import Namespace
from flask_babel import gettext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import BadRequest, Conflict, NotFound, Unauthorized
from app.extensions import db
from app.i18n import LOCALES
from app.models import Account, Action, ApiToken, EndReason, Role, User, Visit
from app.models.base import MAX_ID, utcnow
from app.services import access, audit, directory, sessions, throttle, transaction, visits
from app.services.audit import Origin
from app.services.directory import find_patients as find_patients  # moved there; old callers keep working

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")
MIN_PASSWORD = 8
_signals = Namespace()

#: Sent while a visit is being opened: after its row is flushed, before the one commit, with
#: sender=the Visit and keyword arguments origin (Origin) and actor (User | None). Receivers —
#: e.g. a dialect that holds files for visits still to come — change rows in the same session,
#: so the visit and what they change commit together. The clinic is locked (lock_clinic).
visit_opened = _signals.signal("visit-opened")
# Compared against when the username does not exist, so a miss costs as much as a hit.
_DUMMY_HASH = generate_password_hash("chartbox-timing-equaliser")


def create_account(code: str, name: str) -> Account:
    """Create a clinic. Raises BadRequest for a malformed code, Conflict when it exists."""
    if not _CODE.match(code or ""):
        raise BadRequest("The account code may use letters, digits, '-' and '_' (at most 64).")
    if not (name or "").strip():
        raise BadRequest("The account needs a name.")
    account = Account(code=code, name=name.strip())
    db.session.add(account)
    _commit_unique(f"An account with code {code!r} already exists.")
    return account


def get_account(code: str) -> Account:
    account = db.session.scalar(select(Account).where(Account.code == code))
    if account is None:
        raise NotFound(f"No account with code {code!r}.")
    return account


def create_user(account: Account, role: Role, username: str, full_name: str,
                email: str | None = None, password: str | None = None, *,
                birth_date: date | None = None, chart_number: str | None = None,
                locale: str | None = None) -> User:
    """Create a user of a clinic; without a password the user signs in through tokens only.

    Args:
        birth_date, chart_number: what tells namesakes apart in the patient directory; a chart
            number (patients only) is unique within the clinic.
        locale: the pages' language for them ("en", "es"); None: their browser's.
    Raises:
        BadRequest: malformed username or chart number, empty name, too-short password, a
            date of birth in the future, or an unsupported locale.
        Conflict: the username is taken, or the chart number in this clinic.
    """
    if not _USERNAME.match(username or ""):
        raise BadRequest("Usernames use letters, digits and . _ @ + - (at most 150).")
    if not (full_name or "").strip():
        raise BadRequest("The user needs a full name.")
    if password is not None and len(password) < MIN_PASSWORD:
        raise BadRequest(f"Passwords need at least {MIN_PASSWORD} characters.")
    birth_date = directory.check_birth_date(birth_date)
    chart_number = directory.check_chart_number(account.id, Role(role), chart_number)
    locale = _check_locale(locale)
    user = User(
        account_id=account.id, role=Role(role).value, username=username,
        full_name=full_name.strip(), email=(email or None),
        password_hash=generate_password_hash(password) if password else None,
        birth_date=birth_date, chart_number=chart_number, locale=locale,
    )
    db.session.add(user)
    # Past the check above, a chart number collides only with one given at the same moment.
    _commit_unique(f"The username {username!r} is taken." if chart_number is None else
                   f"The username {username!r} or the chart number “{chart_number}” is taken.")
    return user


def _check_locale(locale: str | None) -> str | None:
    if locale is None:
        return None
    if locale not in LOCALES:
        raise BadRequest(gettext("The language must be one of: %(choices)s.", choices=", ".join(LOCALES)))
    return locale


def set_locale(user: User, locale: str | None) -> User:
    """Save the pages' language `user` chose (None: their browser's again); one commit.

    Raises:
        BadRequest: `locale` is not one of app.i18n.LOCALES.
    """
    user.locale = _check_locale(locale)
    db.session.commit()
    return user


def list_accounts() -> list[Account]:
    """Every clinic, by code."""
    return list(db.session.scalars(select(Account).order_by(Account.code)))


def list_users(account: Account | None = None, role: Role | None = None) -> list[User]:
    """Users (of one clinic, of one role), by username."""
    query = select(User).order_by(User.username)
    if account is not None:
        query = query.where(User.account_id == account.id)
    if role is not None:
        query = query.where(User.role == role.value)
    return list(db.session.scalars(query))


def list_visits(patient: User | None = None) -> list[Visit]:
    """Visits (of one patient), newest first."""
    query = select(Visit).order_by(Visit.created_at.desc(), Visit.id.desc())
    if patient is not None:
        query = query.where(Visit.patient_id == patient.id)
    return list(db.session.scalars(query))


def get_visit(ref: str) -> Visit:
    """A visit by its UUID or external id. Raises NotFound."""
    visit = db.session.scalar(select(Visit).where((Visit.public_id == ref.lower()) | (Visit.external_id == ref)))
    if visit is None:
        raise NotFound(f"No visit {ref!r}.")
    return visit


def get_token(token_id: int) -> ApiToken:
    row = db.session.get(ApiToken, token_id) if 0 < token_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"No token with id {token_id}.")
    return row


def get_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user {username!r}.")
    return user


def get_user_by_id(user_id: int) -> User | None:
    """The user with this id, or None (ids past the INTEGER range name nobody)."""
    return db.session.get(User, user_id) if 0 < user_id <= MAX_ID else None


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same cost either way)."""
    user = db.session.scalar(select(User).where(User.username == (username or "")))
    hashed = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = check_password_hash(hashed, password or "")
    if user is None or not user.password_hash or not ok or not user.active:
        return None
    return user


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(user: User, name: str = "", expires_days: int | None = None,
                 origin: Origin | None = None) -> tuple[ApiToken, str]:
    """Issue an API token; return the row and the token itself (shown once, stored hashed).

    Audited (TOKEN_CREATE, with the token's id and name — never the token) through `origin`.
    """
    if expires_days is not None and expires_days < 1:
        raise BadRequest("--expires-days must be at least 1.")
    token = secrets.token_hex(20)  # 40 hex characters, the token shape API clients expect
    row = ApiToken(
        user_id=user.id, name=name or "", token_hash=hash_token(token), prefix=token[:8],
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(Action.TOKEN_CREATE, origin or Origin.cli(), actor=user, token_id=row.id, token_name=row.name)
    transaction.commit()
    return row, token


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(token_id: int) -> ApiToken:
    """Revoke a token by id (the CLI); revoking a revoked one changes nothing. Raises NotFound."""
    row = get_token(token_id)
    _revoke(row)
    return row


def _revoke(row: ApiToken, origin: Origin | None = None) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(Action.TOKEN_REVOKE, origin or Origin.cli(), actor=row.user, token_id=row.id)
        transaction.commit()


def _token_row(token: str | None) -> ApiToken | None:
    """The row of a presented token (any state), or None."""
    if not token or len(token) > 200:
        return None
    return db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))


def token_state(row: ApiToken, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def resolve_token(token: str | None) -> User:
    """The active user behind an API token. Raises Unauthorized for anything else."""
    if not token:
        raise Unauthorized("A valid API token is required.")
    row = _token_row(token)
    now = utcnow()
    if row is None or token_state(row, now) != "active" or not row.user.active:
        raise Unauthorized("The API token is not valid.")
    changed = row.user.credentials_changed_at
    if changed is not None and row.created_at < changed:
        # Issued just before a password change or a disable (which revoked every token it saw).
        raise Unauthorized("The API token is not valid.")
    user = row.user
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        row.last_used_at = now  # coarse, so reads do not write on every request
        user_id = user.id
        if not transaction.commit_bookkeeping(f"that token {row.prefix} was used"):
            user = db.session.get(User, user_id) or user  # read-only database: reads go on
    return user


def sign_in(username: str, password: str, ip: str | None, origin: Origin | None = None) -> User | None:
    """Check a password sign-in, throttled per username and client address (every door).

    Every attempt is audited (the username tried, success or refusal; never the password).
    Returns the active user, or None for bad credentials or an inactive user (one answer, so
    nobody learns which usernames exist).
    Raises:
        TooManyRequests: too many attempts for this username (from this address or any) or
            too many failing usernames from this address; the password is then not checked.
    """
    attempt = throttle.reserve(username, ip)  # counted before the check, so none races past
    user = authenticate(username, password)
    if user is not None:
        throttle.succeeded(attempt)
    if origin is not None:
        audit.record(Action.SIGN_IN, origin, actor=user, outcome="ok" if user else "refused",
                     username=(username or "")[:150])
        transaction.commit()
    return user


def issue_login_token(username: str, password: str, ip: str | None,
                      token_name: str, origin: Origin | None = None) -> tuple[User, str] | None:
    """Sign in with a password for an API client: a new API token (see sign_in).

    Args:
        token_name: what `tokens list` shows for the new token.
    Returns:
        (user, token) on success; None for bad credentials or an inactive user.
    Raises:
        TooManyRequests: as sign_in.
    """
    user = sign_in(username, password, ip, origin)
    return None if user is None else (user, create_token(user, token_name, origin=origin)[1])


def open_session(username: str, password: str, origin: Origin,
                 replacing: str | None = None) -> tuple[User, str] | None:
    """Sign in with a password for the pages: a new server-side session (see sign_in).

    Args:
        origin: the client address (throttled on) and user agent, kept with the session.
        replacing: the secret of the session the browser had before, ended on success.
    Returns:
        (user, secret for the cookie) on success; None for bad credentials or an inactive user.
    Raises:
        TooManyRequests: as sign_in.
    """
    user = sign_in(username, password, origin.ip, origin)
    return None if user is None else (user, sessions.start(user, origin, replacing))


@dataclass(frozen=True)
class CredentialsCut:
    """What a disable or a password change ended: open sessions and live API tokens."""

    sessions_ended: int
    tokens_revoked: int


def disable_user(user: User) -> CredentialsCut:
    """Disable `user`: no sign-in, no page, no API call from now on; one commit.

    Ends every open session (reason disabled) and revokes every API token of theirs, and sets
    credentials_changed_at. Disabling a disabled user cuts whatever is left (nothing, normally).
    """
    now = utcnow()
    user.active = False
    user.credentials_changed_at = now
    cut = _cut_credentials(user, EndReason.DISABLED, now)
    transaction.commit()
    return cut


def enable_user(user: User) -> bool:
    """Let a disabled user sign in again; one commit. Returns False when they were not disabled.

    Ended sessions and revoked tokens stay so: they sign in anew and get new tokens.
    """
    if user.active:
        return False
    user.active = True
    transaction.commit()
    return True


def set_password(user: User, password: str) -> CredentialsCut:
    """Give `user` a new sign-in password; one commit.

    Ends every open session (reason password_changed) and revokes every API token of theirs,
    and sets credentials_changed_at. Raises BadRequest for a password shorter than MIN_PASSWORD.
    """
    if len(password or "") < MIN_PASSWORD:
        raise BadRequest(f"Passwords need at least {MIN_PASSWORD} characters.")
    now = utcnow()
    user.password_hash = generate_password_hash(password)
    user.credentials_changed_at = now
    cut = _cut_credentials(user, EndReason.PASSWORD_CHANGED, now)
    transaction.commit()
    return cut


def _cut_credentials(user: User, reason: EndReason, now: datetime) -> CredentialsCut:
    tokens = db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                       ApiToken.revoked_at.is_(None))).all()
    for row in tokens:
        row.revoked_at = now
        audit.record(Action.TOKEN_REVOKE, Origin.cli(), actor=user, token_id=row.id, reason=reason.value)
    return CredentialsCut(sessions.end_open_sessions(user, reason, now=now), len(tokens))


def revoke_presented_token(token: str | None, origin: Origin | None = None) -> None:
    """Revoke the API token a client presented (sign-out); unknown tokens are ignored."""
    row = _token_row(token)
    if row is not None:
        _revoke(row, origin)


def create_visit(patient: User, external_id: str | None = None, reason: str = "",
                 origin: Origin | None = None, actor: User | None = None, provider: User | None = None) -> Visit:
    """Open a visit for a patient, in one commit with whatever visit_opened's receivers add.

    Args:
        external_id: an outside system's id for the visit (unique in the clinic).
        origin, actor: who opens it and through which door (receivers audit with them).
        provider: the clinician it is with; a staff actor when not given.
    Raises BadRequest (not a patient; a provider not of the clinic's staff), Conflict (external
    id taken).
    """
    if patient.role != Role.PATIENT:
        raise BadRequest(f"{patient.username} is not a patient.")
    if provider is None and actor is not None and actor.is_staff:
        provider = actor
    message = f"A visit with external id {external_id!r} already exists."
    lock_clinic(patient.account_id)
    visit = Visit(account_id=patient.account_id, patient_id=patient.id, external_id=external_id or None,
                  reason=reason[:200], provider_id=visits.provider_for(patient, provider))
    db.session.add(visit)
    try:
        db.session.flush()  # the visit's id, for the receivers
    except IntegrityError:
        db.session.rollback()
        raise Conflict(message) from None
    visit_opened.send(visit, origin=origin or Origin.cli(), actor=actor)
    transaction.commit(conflict=message)
    return visit


def lock_clinic(account_id: int) -> None:
    """Take the clinic's write lock until the transaction ends.

    Opening a visit and filing a file held for a visit both take it first, so each sees what
    the other committed: on PostgreSQL a row lock on the clinic (READ COMMITTED then reads the
    other's commit), on SQLite the database write lock (writers are serialized anyway).
    """
    db.session.execute(update(Account).where(Account.id == account_id).values(code=Account.code)
                       .execution_options(synchronize_session=False))


def get_patient(actor: User, patient_id: int) -> User:
    """A patient whose chart `actor` may open (their own, or any in a provider's clinic).

    Raises NotFound for anyone else, so a chart's existence never leaks.
    """
    user = get_user_by_id(patient_id)
    if user is None or user.role != Role.PATIENT or not access.in_scope(actor, user.id, user.account_id):
        raise NotFound("No such patient.")
    return user


def _commit_unique(message: str) -> None:
    transaction.commit(conflict=message)
