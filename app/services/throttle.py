"""The sign-in throttle: password checks are reserved before they are made, so none races past.

Every password check on every door (pages, any API's sign-in) goes through `reserve` first,
then the caller checks the password, then reports `succeeded`. A reservation is an atomic hit
on the limits store the rate limits use (RATELIMIT_STORAGE_URI: the app's database, Redis or
memory), in fixed windows:

- LOGIN_ATTEMPTS per username and address within LOGIN_WINDOW seconds;
- LOGIN_USERNAME_ATTEMPTS per username from any address (guessing spread over many addresses);
- LOGIN_SPRAY_USERNAMES distinct usernames per address within LOGIN_SPRAY_WINDOW (password
  spraying: one password tried on many usernames).

A refused reservation raises TooManyRequests (429, Retry-After = the window's end) and the
password is not checked at all. A success clears the username's counts and gives its spraying
slot back, so only failing usernames count. Usernames are hashed into the keys.

If the store is down, sign-in stays open (passwords are still checked) and the outage is logged
at ERROR: locking every clinician out would be the worse failure.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import gettext
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.errors import TooManyRequests
from app.i18n import N_

TOO_MANY = N_("Too many failed sign-in attempts; wait a few minutes and try again.")
TOO_MANY_USERNAMES = N_("Too many failed sign-in attempts from your address; wait a few minutes and try again.")


@dataclass
class Attempt:
    """A reserved password check: the keys it counted in, to settle after the check."""

    user: str
    address: str
    spray_counted: bool = False
    #: False when the store was down: nothing to settle.
    guarded: bool = True
    keys: list[tuple[RateLimitItem, tuple[str, ...]]] = field(default_factory=list)


def reserve(username: str | None, ip: str | None) -> Attempt:
    """Count one password check for `username` from `ip`, or refuse it.

    Raises:
        TooManyRequests: a limit is used up (retry_after says for how long); check nothing.
    """
    attempt = Attempt(user=_hash(username), address=ip or "-")
    storage = _store()
    try:
        _reserve(attempt, storage)
    except _errors(storage) as exc:
        current_app.logger.error("sign-in throttle unavailable, not throttling: %s", exc)
        attempt.guarded = False
    return attempt


def succeeded(attempt: Attempt) -> None:
    """The password was right: clear the username's counts and give back its spraying slot."""
    if not attempt.guarded:
        return
    storage = _store()
    try:
        for item, identifiers in attempt.keys:
            storage.clear(item.key_for(*identifiers))
        spray = _spray_item()
        if attempt.spray_counted and spray is not None:
            # Only failing usernames count towards spraying: refund this one (the hit stays
            # atomic; a refund never lets a check through that a hit refused).
            storage.incr(spray.key_for(*_spray_ids(attempt)), spray.get_expiry(), amount=-1)
    except _errors(storage) as exc:
        current_app.logger.error("sign-in throttle unavailable, success not recorded: %s", exc)


def _reserve(attempt: Attempt, storage: Storage) -> None:
    config = current_app.config
    limiter = FixedWindowRateLimiter(storage)
    window = int(config["LOGIN_WINDOW"])
    # Most specific first, stopping at the first refusal, so an address that is already
    # refused does not run up the username's count from every address.
    for setting, identifiers, message in (
        ("LOGIN_ATTEMPTS", ("login", attempt.user, attempt.address), TOO_MANY),
        ("LOGIN_USERNAME_ATTEMPTS", ("login-user", attempt.user), TOO_MANY),
    ):
        item = _item(config[setting], window)
        if item is None:
            continue
        ids = (_prefix(), *identifiers)
        if not limiter.hit(item, *ids):
            _refuse(limiter, item, ids, message)
        attempt.keys.append((item, ids))
    spray = _spray_item()
    if spray is None:
        return
    # A username counts once per window: a marker hit that succeeds means "first time here".
    seen = RateLimitItemPerSecond(1, spray.get_expiry())
    seen_ids = (_prefix(), "login-seen", attempt.address, attempt.user)
    if not limiter.hit(seen, *seen_ids):
        return
    if not limiter.hit(spray, *_spray_ids(attempt)):
        storage.clear(seen.key_for(*seen_ids))  # so the same username counts (and is refused) again
        _refuse(limiter, spray, _spray_ids(attempt), TOO_MANY_USERNAMES)
    attempt.spray_counted = True


def _refuse(limiter: FixedWindowRateLimiter, item: RateLimitItem, ids: tuple[str, ...], message: str) -> None:
    err = TooManyRequests(gettext(message))
    reset = limiter.get_window_stats(item, *ids).reset_time
    err.retry_after = max(1, math.ceil(reset - time.time()))
    raise err


def _item(amount, window: int) -> RateLimitItem | None:
    amount = int(amount or 0)
    return RateLimitItemPerSecond(amount, window) if amount > 0 and window > 0 else None


def _spray_item() -> RateLimitItem | None:
    config = current_app.config
    return _item(config["LOGIN_SPRAY_USERNAMES"], int(config["LOGIN_SPRAY_WINDOW"]))


def _spray_ids(attempt: Attempt) -> tuple[str, ...]:
    return (_prefix(), "login-spray", attempt.address)


def _prefix() -> str:
    return str(current_app.config.get("RATELIMIT_KEY_PREFIX") or "chartbox")


def _hash(username: str | None) -> str:
    """Usernames are whatever a client sends: keys hold a digest of the one the lookup uses."""
    return hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:24]


def _store() -> Storage:
    from app.ratelimits import store  # the wiring module builds the store with the app

    return store()


def _errors(storage: Storage) -> tuple[type[Exception], ...]:
    base = storage.base_exceptions
    return (StorageError, *(base if isinstance(base, tuple) else (base,)))
