"""The default sign-in throttle store: the app's own database, shared by every worker."""
import time

import pytest
from conftest import base_config
from sqlalchemy import func, select

from app import create_app
from app.errors import TooManyRequests
from app.extensions import db
from app.models import LoginFailure
from app.services import throttle
from app.services.throttle import DatabaseCounter, MemoryCounter

KEY = throttle.login_key("alice", "203.0.113.9")


@pytest.fixture
def config_overrides():
    return {"LOGIN_ATTEMPTS": 3, "LOGIN_WINDOW": 60}


def test_the_default_store_is_the_database(app):
    assert app.config["RATELIMIT_STORAGE_URL"] == "database://"
    assert isinstance(app.extensions["chartbox_throttle"], DatabaseCounter)


def test_n_failures_then_too_many_requests_and_success_resets(app):
    for _ in range(3):
        throttle.check(KEY)
        throttle.failed(KEY)
    with pytest.raises(TooManyRequests):
        throttle.check(KEY)
    throttle.check(throttle.login_key("alice", "198.51.100.1"))  # another address is its own key
    throttle.succeeded(KEY)
    throttle.check(KEY)
    assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_two_workers_on_one_database_share_the_count(app, tmp_path, config_overrides):
    """A second app on the same database stands for another gunicorn worker or host."""
    second = create_app({**base_config(tmp_path), **config_overrides}, instance_path=str(tmp_path / "second"))
    throttle.failed(KEY)
    with second.app_context():
        throttle.failed(KEY)
    throttle.failed(KEY)
    with second.app_context(), pytest.raises(TooManyRequests):
        throttle.check(KEY)


def test_a_failure_counts_even_when_the_request_rolls_back(app):
    throttle.failed(KEY)
    db.session.rollback()
    assert app.extensions["chartbox_throttle"].count(KEY, 60) == 1


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 2, "LOGIN_WINDOW": 1}])
def test_failures_leave_the_window_and_are_pruned(app, config_overrides):
    throttle.failed(KEY)
    throttle.failed(KEY)
    with pytest.raises(TooManyRequests):
        throttle.check(KEY)
    time.sleep(1.1)
    throttle.check(KEY)
    throttle.failed(throttle.login_key("bob", None))  # a new failure sweeps out expired rows
    assert db.session.scalars(select(LoginFailure.key)).all() == [throttle.login_key("bob", None)]


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_STORAGE_URL": "memory://"}])
def test_memory_store_still_available(app, config_overrides):
    assert isinstance(app.extensions["chartbox_throttle"], MemoryCounter)


def test_an_unknown_store_stops_start_up(tmp_path):
    with pytest.raises(RuntimeError, match="RATELIMIT_STORAGE_URL"):
        create_app({**base_config(tmp_path), "RATELIMIT_STORAGE_URL": "mongodb://x"},
                   instance_path=str(tmp_path / "i"))
