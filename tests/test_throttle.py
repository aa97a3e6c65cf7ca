"""The sign-in throttle (every door's password check): reserved before the check, so nothing
races past it; per username and address, per username from anywhere, and per address across
usernames (spraying). Counted in the app's database by default, shared by every worker."""
from __future__ import annotations

import threading
import time

import pytest
from conftest import base_config
from sqlalchemy import func, select

from app import create_app
from app.errors import TooManyRequests
from app.extensions import db
from app.models import Action, AuditEvent, Channel, RateLimitCounter
from app.ratelimits import STORE_KEY
from app.services import accounts
from app.services.audit import Origin
from app.services.limit_store import DatabaseStorage

PASSWORD = "correct horse battery"
HERE, THERE = "203.0.113.9", "198.51.100.1"


@pytest.fixture
def config_overrides():
    return {"LOGIN_ATTEMPTS": 3, "LOGIN_WINDOW": 60}


def sign_in(username: str, password: str = "wrong password", ip: str = HERE):
    return accounts.sign_in(username, password, ip, Origin(Channel.WEB, ip))


def checks() -> int:
    """Password checks made: each one leaves a sign-in event; a refused reservation none."""
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == Action.SIGN_IN))


def refused(username: str, password: str = "wrong password", ip: str = HERE) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as info:
        sign_in(username, password, ip)
    return info.value


def test_the_default_store_is_the_database(app):
    assert app.config["RATELIMIT_STORAGE_URI"] == "database://"
    assert isinstance(app.extensions[STORE_KEY], DatabaseStorage)


def test_n_failures_then_429_without_checking_the_password(app, make_user):
    user = make_user()
    for _ in range(3):
        assert sign_in(user.username) is None
    assert checks() == 3
    err = refused(user.username, PASSWORD)  # even the right password waits
    assert err.status == 429 and "Too many failed sign-in attempts" in err.message
    assert 1 <= err.retry_after <= 60
    assert checks() == 3  # refused before the check: no fourth password check
    assert sign_in(user.username, PASSWORD, THERE) is not None  # another address is its own key


def test_a_success_clears_the_count(app, make_user):
    user = make_user()
    sign_in(user.username)
    sign_in(user.username)
    assert sign_in(user.username, PASSWORD) is not None
    for _ in range(3):
        assert sign_in(user.username) is None
    refused(user.username)


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 10, "LOGIN_USERNAME_ATTEMPTS": 4}])
def test_guessing_one_username_from_many_addresses_is_refused(app, make_user, config_overrides):
    user = make_user()
    for n in range(4):
        assert sign_in(user.username, ip=f"192.0.2.{n}") is None
    err = refused(user.username, PASSWORD, ip="192.0.2.99")
    assert err.status == 429 and checks() == 4


@pytest.mark.parametrize("config_overrides", [{"LOGIN_SPRAY_USERNAMES": 3}])
def test_spraying_many_usernames_from_one_address_is_refused(app, make_user, config_overrides):
    names = [make_user().username for _ in range(3)] + ["nobody-1", "nobody-2"]
    for name in names[:3]:
        assert sign_in(name) is None
        assert sign_in(name) is None  # the same username again is not a new one
    err = refused(names[3])
    assert "from your address" in err.message and 1 <= err.retry_after <= 900
    refused(names[3])  # still refused: a refused username did not slip into the "seen" list
    assert checks() == 6
    assert sign_in(names[4], ip=THERE) is None  # another address sprays on its own count


@pytest.mark.parametrize("config_overrides", [{"LOGIN_SPRAY_USERNAMES": 2}])
def test_successful_usernames_do_not_count_as_spraying(app, make_user, config_overrides):
    """A clinic's front desk: many people sign in from one address; only failures count."""
    people = [make_user() for _ in range(5)]
    for person in people:
        assert sign_in(person.username, PASSWORD) is not None
    assert sign_in("typo-1") is None and sign_in("typo-2") is None
    refused("typo-3")


def test_two_workers_on_one_database_share_the_count(app, tmp_path, config_overrides, make_user):
    """A second app on the same database stands for another gunicorn worker or host."""
    # Read once: `user.username` in the second app's context would reload the expired row
    # through the first app's session on the second app's engine, leaving that connection
    # checked out past the dispose below (psycopg warns of it; sqlite3 is silent).
    username = make_user().username
    second = create_app({**base_config(tmp_path), **config_overrides}, instance_path=str(tmp_path / "second"))
    sign_in(username)
    with second.app_context():
        sign_in(username)
    sign_in(username)
    with second.app_context():
        with pytest.raises(TooManyRequests):
            sign_in(username)
        db.session.remove()
        db.engine.dispose()


def test_a_reservation_counts_even_when_the_request_rolls_back(app, make_user):
    user = make_user()
    sign_in(user.username)
    db.session.rollback()
    assert sum(db.session.scalars(select(RateLimitCounter.count).where(
        RateLimitCounter.key.like("%/login/%")))) == 1


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 2, "LOGIN_WINDOW": 1}])
def test_the_window_ends(app, make_user, config_overrides):
    user = make_user()
    sign_in(user.username)
    sign_in(user.username)
    refused(user.username)
    time.sleep(1.1)
    assert sign_in(user.username, PASSWORD) is not None


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 5}])
def test_concurrent_attempts_never_pass_the_limit(app, make_user, config_overrides):
    """32 real threads at once: the count is reserved before each check, so at most 5 checks."""
    username = make_user().username
    outcomes: list[str] = []
    barrier = threading.Barrier(32)

    def attempt():
        with app.app_context():
            barrier.wait(10)
            try:
                sign_in(username)
            except TooManyRequests:
                outcomes.append("429")
            else:
                outcomes.append("checked")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes.count("checked") == 5 and outcomes.count("429") == 27
    assert checks() == 5


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_STORAGE_URI": "memory://", "LOGIN_ATTEMPTS": 2}])
def test_the_memory_store_works_too(app, make_user, config_overrides):
    user = make_user()
    sign_in(user.username)
    sign_in(user.username)
    refused(user.username)
    assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) == 0


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0", "LOGIN_ATTEMPTS": 1}])
def test_a_store_that_is_down_leaves_sign_in_open_and_is_logged(app, make_user, config_overrides, caplog):
    user = make_user()
    assert sign_in(user.username) is None
    assert sign_in(user.username) is None  # not throttled (the store cannot count)...
    assert sign_in(user.username, PASSWORD) is not None  # ...and nobody is locked out
    assert "sign-in throttle unavailable, not throttling" in caplog.text
    assert any(r.levelname == "ERROR" for r in caplog.records if "sign-in throttle" in r.getMessage())


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 0, "LOGIN_USERNAME_ATTEMPTS": 0,
                                               "LOGIN_SPRAY_USERNAMES": 0}])
def test_zero_turns_a_check_off(app, make_user, config_overrides):
    user = make_user()
    for _ in range(12):
        assert sign_in(user.username) is None


def test_every_door_answers_429_with_retry_after_in_its_shape(app, client, make_user, make_page_client):
    user = make_user()
    for _ in range(3):
        sign_in(user.username, ip="127.0.0.1")  # the test client's address
    page = make_page_client()
    resp = page.post("/login", data={"csrf_token": page.csrf(), "username": user.username, "password": PASSWORD})
    assert resp.status_code == 429 and "Too many failed sign-in attempts" in resp.get_data(as_text=True)
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    resp = client.post("/tscharts/v1/login/", json={"username": user.username, "password": PASSWORD})
    assert resp.status_code == 429 and set(resp.get_json()) == {"detail"}
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert checks() == 3
