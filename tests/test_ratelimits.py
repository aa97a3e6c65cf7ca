"""Request rate limits (Flask-Limiter): per API token, per client address, per page session,
reads apart from writes, 429 + Retry-After in every door's shape, and where counts are kept.

The test config turns rate limits off (tests/conftest.py); every test here turns them on with
small limits, against the database store (the default) and memory:// alike.
"""
from __future__ import annotations

import threading
import uuid

import pytest
from conftest import base_config
from sqlalchemy import select
from test_audit_group import together
from test_services_postgres import pg_migrated, pg_schema  # noqa: F401 — reused for the PostgreSQL tests

from app import create_app
from app.extensions import LIMITER_KEY, db
from app.models import RateLimitCounter, Role
from app.services.limit_store import DatabaseStorage

UNKNOWN = str(uuid.UUID(int=7))


def limits(**groups: str) -> dict:
    """Rate limits on, every group generous unless named."""
    settings = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_API_READ": "1000 per minute", "RATELIMIT_API_WRITE": "1000 per minute",
        "RATELIMIT_ADDRESS_READ": "1000 per minute", "RATELIMIT_ADDRESS_WRITE": "1000 per minute",
        "RATELIMIT_SESSION_READ": "1000 per minute", "RATELIMIT_SESSION_WRITE": "1000 per minute",
    }
    settings.update({f"RATELIMIT_{name.upper()}": value for name, value in groups.items()})
    return settings


@pytest.fixture(params=["database://", "memory://"])
def storage_uri(request):
    return request.param


@pytest.fixture(autouse=True)
def the_store_never_failed(request, caplog):
    """A store that raises is swallowed (limits fall back to memory): here, that is a failure,
    except where a test takes the store down on purpose."""
    yield
    if "store_that_is_down" not in request.node.name:
        assert "falling back to in-memory storage" not in caplog.text
        assert "Failed to rate limit" not in caplog.text


@pytest.fixture
def config_overrides(storage_uri):
    return {**limits(api_write="3 per minute", api_read="5 per minute"), "RATELIMIT_STORAGE_URI": storage_uri}


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER, password=None)


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT, password=None)


@pytest.fixture
def token(make_token, provider):
    return make_token(provider)


def retry_after(resp) -> int:
    value = int(resp.headers["Retry-After"])
    assert 1 <= value <= 60, value
    return value


# Cheap writes and reads of each dialect: they are counted whatever they answer.
DIALECTS = {
    "vsee": {
        "auth": lambda t: {"X-ApiToken": t},
        "write": lambda c, h, p: c.delete(f"/api_v3/files/{UNKNOWN}", headers=h),
        "read": lambda c, h, p: c.get(f"/api_v3/files?target_id={p.id}", headers=h),
        "shape": lambda body: body["code"] == 429 and set(body) == {"code", "message"},
    },
    "candid": {
        "auth": lambda t: {"Authorization": f"Bearer {t}"},
        "write": lambda c, h, p: c.delete(f"/images/v1/{UNKNOWN}/1", headers=h),
        "read": lambda c, h, p: c.get(f"/images/v1?patient_id={p.id}", headers=h),
        "shape": lambda body: body["errorName"] == "TooManyRequestsError" and body["content"]["message"],
    },
    "tscharts": {
        "auth": lambda t: {"Authorization": f"Token {t}"},
        "write": lambda c, h, p: c.post("/tscharts/v1/image/", headers=h, json={}),
        "read": lambda c, h, p: c.get(f"/tscharts/v1/image/?patient={p.id}", headers=h),
        "shape": lambda body: set(body) == {"detail"} and body["detail"],
    },
    "fhir": {
        "auth": lambda t: {"Authorization": f"Bearer {t}"},
        "write": lambda c, h, p: c.post("/fhir/R4/DocumentReference", headers=h, json={},
                                        content_type="application/fhir+json"),
        "read": lambda c, h, p: c.get(f"/fhir/R4/DocumentReference?patient={p.id}", headers=h),
        "shape": lambda body: body["resourceType"] == "OperationOutcome"
        and body["issue"][0]["code"] == "throttled" and body["issue"][0]["diagnostics"],
    },
    "claros": {
        "auth": lambda t: {"X-API-Key": t},
        "write": lambda c, h, p: c.post(f"/patients/{p.id}/pdf", headers=h, data={}),
        "read": None,  # Claros only uploads
        "shape": lambda body: set(body) == {"detail"} and body["detail"],
    },
}


@pytest.mark.parametrize("name", DIALECTS)
def test_a_token_past_its_write_limit_gets_429_in_the_dialects_shape(client, token, patient, name):
    door = DIALECTS[name]
    headers = door["auth"](token)
    for _ in range(3):
        assert door["write"](client, headers, patient).status_code != 429
    resp = door["write"](client, headers, patient)
    assert resp.status_code == 429, resp.get_data(as_text=True)
    assert door["shape"](resp.get_json()), resp.get_json()
    assert "API token" in resp.get_data(as_text=True)
    retry_after(resp)
    if door["read"] is not None:  # reads are counted apart: they keep working
        assert door["read"](client, headers, patient).status_code in (200, 404)


def test_one_token_has_one_count_across_every_dialect(client, token, patient):
    for name in ("vsee", "candid", "tscharts"):
        door = DIALECTS[name]
        assert door["write"](client, door["auth"](token), patient).status_code != 429
    door = DIALECTS["claros"]
    assert door["write"](client, door["auth"](token), patient).status_code == 429


def test_reads_have_their_own_limit(client, token, patient):
    headers = {"X-ApiToken": token}
    for _ in range(5):
        assert client.get(f"/api_v3/files?target_id={patient.id}", headers=headers).status_code == 200
    resp = client.get(f"/api_v3/files?target_id={patient.id}", headers=headers)
    assert resp.status_code == 429 and resp.get_json()["code"] == 429
    retry_after(resp)
    assert client.delete(f"/api_v3/files/{UNKNOWN}", headers=headers).status_code == 404  # writes still go


def test_another_token_of_the_same_user_and_address_has_its_own_count(client, provider, make_token):
    first, second = make_token(provider), make_token(provider)
    for _ in range(3):
        client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": first})
    assert client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": first}).status_code == 429
    assert client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": second}).status_code == 404


@pytest.mark.parametrize("storage_uri", ["database://"])
def test_storage_keys_hold_a_hash_of_the_token_never_the_token(client, token, storage_uri):
    client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": token})
    keys = db.session.scalars(select(RateLimitCounter.key)).all()
    assert any("/token:" in key for key in keys) and any("/address:127.0.0.1/" in key for key in keys)
    assert not any(token in key or token[:8] in key for key in keys)


# -- pages and addresses ---------------------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [limits(session_read="3 per minute")])
def test_a_page_session_past_its_limit_gets_the_pages_429(make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    for _ in range(3):
        assert client.get("/documents").status_code == 200
    resp = client.get("/documents")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 429 and resp.mimetype == "text/html"
    assert "going a little too fast" in page and "Sign out" in page  # the app's own error page
    retry_after(resp)
    other = make_page_client(make_user())  # another session from the same address
    assert other.get("/documents").status_code == 200


@pytest.mark.parametrize("config_overrides", [limits(session_write="2 per minute")])
def test_page_writes_are_counted_apart_from_reads(make_page_client, make_user):
    client = make_page_client(make_user())
    token = client.csrf("/documents")
    for _ in range(2):
        client.post(f"/documents/{UNKNOWN}/rename", data={"csrf_token": token, "name": "x.pdf"})
    assert client.post(f"/documents/{UNKNOWN}/rename",
                       data={"csrf_token": token, "name": "x.pdf"}).status_code == 429
    assert client.get("/documents").status_code == 200


@pytest.mark.parametrize("config_overrides", [limits(address_read="3 per minute")])
def test_per_address_limits_apply_to_unauthenticated_requests(client, make_user, make_file, app):
    for _ in range(3):
        assert client.get("/login").status_code == 200
    resp = client.get("/login")
    assert resp.status_code == 429 and "from your address" in resp.get_data(as_text=True)
    retry_after(resp)
    assert client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200
    # Signed links are reads of the same address: refused too, in the links' JSON shape.
    resp = client.get("/files/view/x?auth_code=00&time=1")
    assert resp.status_code == 429 and resp.get_json()["code"] == 429


@pytest.mark.parametrize("config_overrides", [limits(address_write="2 per minute")])
def test_an_address_is_limited_however_many_tokens_it_presents(client, provider, make_token):
    for _ in range(2):
        client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": make_token(provider)})
    resp = client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": make_token(provider)})
    assert resp.status_code == 429 and "from your address" in resp.get_json()["message"]
    resp = client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": "not-even-a-token"})
    assert resp.status_code == 429  # refused before the token is looked up


@pytest.mark.parametrize("config_overrides", [{**limits(address_read="1 per minute"), "RATELIMIT_ENABLED": False}])
def test_ratelimit_enabled_false_turns_every_limit_off(app, client):
    assert not app.extensions[LIMITER_KEY].enabled
    assert [client.get("/login").status_code for _ in range(5)] == [200] * 5


@pytest.mark.parametrize("config_overrides", [limits(address_read="")])
def test_an_empty_setting_turns_its_group_off(client):
    assert [client.get("/login").status_code for _ in range(5)] == [200] * 5


def test_the_default_app_has_rate_limits_on(tmp_path):
    config = {k: v for k, v in base_config(tmp_path).items() if k != "RATELIMIT_ENABLED"}
    app = create_app(config, instance_path=str(tmp_path / "i"))
    assert app.config["RATELIMIT_ENABLED"] is True and app.config["RATELIMIT_STORAGE_URI"] == "database://"
    assert app.extensions[LIMITER_KEY].enabled
    assert isinstance(app.extensions[LIMITER_KEY].storage, DatabaseStorage)


# -- Flask-Limiter's own settings -----------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [{**limits(), "RATELIMIT_DEFAULT": "2 per minute",
                                               "RATELIMIT_HEADERS_ENABLED": True}])
def test_flask_limiters_own_settings_work_as_documented(client):
    first = client.get("/login")
    assert first.headers["X-RateLimit-Limit"] and first.headers["X-RateLimit-Remaining"]
    client.get("/login")
    resp = client.get("/login")
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert client.get("/").status_code in (200, 302)  # a default limit is per route


@pytest.mark.parametrize("storage_uri", ["database://", "memory://"])
@pytest.mark.parametrize("config_overrides", [{**limits(address_read="3 per minute"),
                                               "RATELIMIT_STRATEGY": "sliding-window-counter"}])
def test_the_sliding_window_counter_strategy(client, config_overrides, storage_uri):
    assert [client.get("/login").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_moving_window_needs_redis_or_memory(tmp_path):
    with pytest.raises(RuntimeError, match="moving-window"):
        create_app({**base_config(tmp_path), "RATELIMIT_STRATEGY": "moving-window"},
                   instance_path=str(tmp_path / "i"))
    app = create_app({**base_config(tmp_path), **limits(address_read="1 per minute"),
                      "RATELIMIT_STRATEGY": "moving-window", "RATELIMIT_STORAGE_URI": "memory://"},
                     instance_path=str(tmp_path / "j"))
    with app.app_context():
        client = app.test_client()
        assert [client.get("/login").status_code for _ in range(2)] == [200, 429]


def test_an_unknown_store_stops_start_up(tmp_path):
    with pytest.raises(RuntimeError, match="RATELIMIT_STORAGE_URI"):
        create_app({**base_config(tmp_path), "RATELIMIT_STORAGE_URI": "nosuch://x"},
                   instance_path=str(tmp_path / "i"))


# -- where counts live -----------------------------------------------------------------------------

@pytest.mark.parametrize("storage_uri", ["database://"])
def test_two_workers_on_one_database_share_the_count(app, client, tmp_path, token, config_overrides, storage_uri):
    """A second app on the same database stands for another gunicorn worker or host."""
    second = create_app({**base_config(tmp_path), **config_overrides}, instance_path=str(tmp_path / "second"))
    other = second.test_client()
    headers = {"X-ApiToken": token}
    assert client.delete(f"/api_v3/files/{UNKNOWN}", headers=headers).status_code == 404
    with second.app_context():
        assert other.delete(f"/api_v3/files/{UNKNOWN}", headers=headers).status_code == 404
    assert client.delete(f"/api_v3/files/{UNKNOWN}", headers=headers).status_code == 404
    with second.app_context():
        assert other.delete(f"/api_v3/files/{UNKNOWN}", headers=headers).status_code == 429
        db.engine.dispose()


@pytest.mark.parametrize("config_overrides", [{**limits(address_read="2 per minute"),
                                               "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"}])
def test_a_store_that_is_down_refuses_nothing_and_is_logged(client, caplog):
    assert client.get("/login").status_code == 200
    assert "falling back to in-memory storage" in caplog.text
    # Meanwhile the limits still hold, per process.
    assert [client.get("/login").status_code for _ in range(2)] == [200, 429]


def run_threads(target, n: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def check_concurrent_hits(storage) -> None:
    """8 threads x 25 hits of one key: every one counted, none failed."""
    errors: list[BaseException] = []

    def hit():
        try:
            for _ in range(25):
                storage.incr("concurrent", 60)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    run_threads(hit, 8)
    assert errors == [] and storage.get("concurrent") == 200


@pytest.mark.parametrize("storage_uri", ["database://"])
def test_concurrent_hits_each_see_their_own_count_as_if_one_after_another(app, storage_uri):
    """Increments that arrive together share one transaction and one statement per key
    (group_commit.py); each caller still gets a count of its own: 1 to N, each once."""
    storage = app.extensions[LIMITER_KEY].storage
    seen: list[int] = []
    group = storage._adds
    together(group, lambda: seen.append(storage.incr("together", 60)), 12)  # all in one batch
    assert sorted(seen) == list(range(1, 13)) and storage.get("together") == 12
    assert storage.incr("together", 60) == 13


@pytest.mark.parametrize("storage_uri", ["database://"])
def test_the_database_store_counts_every_concurrent_hit(app, storage_uri):
    storage = app.extensions[LIMITER_KEY].storage
    assert isinstance(storage, DatabaseStorage)
    check_concurrent_hits(storage)


@pytest.mark.parametrize("storage_uri", ["database://"])
def test_the_database_store_windows_expire_and_are_pruned(app, monkeypatch, storage_uri):
    storage = app.extensions[LIMITER_KEY].storage
    now = [1_900_000_000.0]
    monkeypatch.setattr("app.services.limit_store.time.time", lambda: now[0])
    assert storage.incr("a", 10) == 1 and storage.incr("a", 10) == 2
    assert storage.get_expiry("a") == now[0] + 10
    now[0] += 11  # the window ended: the next hit starts a new one
    assert storage.get("a") == 0 and storage.incr("a", 10) == 1
    storage.incr("b", 5)
    now[0] += 60
    storage.incr("c", 5)  # a sweep of expired rows rides along
    assert db.session.scalars(select(RateLimitCounter.key)).all() == ["c"]
    storage.clear("c")
    assert storage.get("c") == 0 and storage.check()


# -- the database store on PostgreSQL --------------------------------------------------------------

@pytest.fixture
def pg_app(pg_migrated, tmp_path):
    """The app on PostgreSQL (the migrated private schema of test_services_postgres), limits on."""
    from test_services_postgres import empty_tables, pg_config

    app = create_app({**pg_config(tmp_path, pg_migrated["schema"]), **limits(api_write="3 per minute"),
                      "LOGIN_ATTEMPTS": 4}, instance_path=str(tmp_path / "pg"))
    with app.app_context():
        yield app
        empty_tables()


@pytest.mark.postgres
def test_the_database_store_on_postgresql_counts_every_concurrent_hit(pg_app):
    storage = pg_app.extensions[LIMITER_KEY].storage
    assert isinstance(storage, DatabaseStorage) and storage.engine.dialect.name == "postgresql"
    check_concurrent_hits(storage)
    assert storage.get_expiry("concurrent") > storage.get_expiry("never-hit")


def check_sliding_window(storage) -> None:
    """8 threads x 5 acquisitions of a sliding window of 10: exactly 10 admitted."""
    admitted: list[bool] = []
    run_threads(lambda: admitted.extend(storage.acquire_sliding_window_entry("sliding", 10, 60) for _ in range(5)), 8)
    assert admitted.count(True) == 10 and len(admitted) == 40
    previous, _, current, current_ttl = storage.get_sliding_window("sliding", 60)
    assert (previous, current) == (0, 10) and 60 < current_ttl <= 120
    storage.clear_sliding_window("sliding", 60)
    assert storage.get_sliding_window("sliding", 60)[2] == 0


@pytest.mark.parametrize("storage_uri", ["database://"])
def test_the_sliding_window_on_sqlite_never_admits_more_than_the_limit(app, storage_uri):
    check_sliding_window(app.extensions[LIMITER_KEY].storage)


@pytest.mark.postgres
def test_the_sliding_window_on_postgresql_never_admits_more_than_the_limit(pg_app):
    check_sliding_window(pg_app.extensions[LIMITER_KEY].storage)


@pytest.mark.postgres
def test_rate_limits_and_the_throttle_on_postgresql(pg_app):
    from app.errors import TooManyRequests
    from app.services import accounts
    from app.services.audit import Origin

    clinic = accounts.create_account("pg", "PG")
    provider = accounts.create_user(clinic, Role.PROVIDER, "pg.dr", "Dr PG", None, "correct horse battery")
    token = accounts.create_token(provider)[1]
    client = pg_app.test_client()
    statuses = [client.delete(f"/api_v3/files/{UNKNOWN}", headers={"X-ApiToken": token}).status_code
                for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    outcomes: list[str] = []

    def guess():
        with pg_app.app_context():
            try:
                accounts.sign_in("pg.dr", "wrong password", "192.0.2.1", Origin("web", "192.0.2.1"))
                outcomes.append("checked")
            except TooManyRequests:
                outcomes.append("429")
            finally:
                db.session.remove()

    run_threads(guess, 16)
    assert outcomes.count("checked") == 4 and outcomes.count("429") == 12
