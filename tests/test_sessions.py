"""Server-side sessions: sign-out ends one for good, idle and absolute timeouts, a fresh session at
sign-in, disable/enable/set-password cutting sessions and tokens, `sessions list/revoke`, the
cookie's flags, and the page where a patient signs their other sessions out."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from conftest import PageClient
from flask_login.utils import encode_cookie
from itsdangerous import TimestampSigner
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, EndReason, User, UserSession
from app.models.base import utcnow
from app.services import accounts, sessions
from app.web.auth import SESSION_ENDED

DOMAIN = "chartbox.test"
PASSWORD = "correct horse battery"


# -- helpers -------------------------------------------------------------------------------------

def cookie(client: PageClient) -> str | None:
    found = client.get_cookie("session", domain=DOMAIN)
    return found.value if found is not None else None


def browser_with(app, value: str | None) -> PageClient:
    """A fresh browser holding exactly this session cookie (a copied or stolen one)."""
    other = PageClient(app, app.response_class, use_cookies=True)
    if value is not None:
        other.set_cookie("session", value, domain=DOMAIN)
    return other


def signed_in(client: PageClient) -> bool:
    resp = client.get("/documents")
    assert resp.status_code in (200, 302), resp.status_code
    return resp.status_code == 200


def assert_sent_to_login(client: PageClient, path: str = "/documents") -> None:
    resp = client.get(path)
    assert resp.status_code == 302 and resp.location.startswith("/login"), (resp.status_code, resp.location)


def records(user: User) -> list[UserSession]:
    db.session.expire_all()
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)
                                   .order_by(UserSession.id)))


def only_record(user: User) -> UserSession:
    rows = records(user)
    assert len(rows) == 1, rows
    return rows[0]


def backdate(row: UserSession, **delta) -> None:
    """Move a record's clocks back, as if time had passed since."""
    if "created" in delta:
        row.created_at = row.created_at - timedelta(minutes=delta["created"])
    if "seen" in delta:
        row.last_seen_at = row.last_seen_at - timedelta(minutes=delta["seen"])
    db.session.commit()


def sign_out(client: PageClient):
    return client.post("/logout", data={"csrf_token": client.csrf("/documents")})


def login(client: PageClient, username: str, password: str, csrf_from: str = "/login"):
    return client.post("/login", data={"csrf_token": client.csrf(csrf_from), "username": username,
                                       "password": password})


def api_status(client, token: str) -> int:
    return client.get("/api_v3/files", headers={"X-ApiToken": token}).status_code


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(result, words: str) -> None:
    assert result.exit_code != 0, result.output
    assert words in result.output and "Traceback" not in result.output, result.output


# -- sign-out, timeouts, a fresh session -----------------------------------------------------------

def test_sign_out_ends_the_session_for_good(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    copied = cookie(client)  # e.g. lifted from the browser before the patient signed out
    assert signed_in(browser_with(app, copied))
    assert sign_out(client).status_code == 303
    assert_sent_to_login(client)
    assert_sent_to_login(browser_with(app, copied))  # the old cookie opens nothing any more
    row = only_record(user)
    assert row.ended_at is not None and row.end_reason == EndReason.SIGNED_OUT


def test_the_cookie_holds_a_secret_not_the_authority(app, make_page_client, make_user):
    """The record is found by the hash of the cookie's secret; a cookie that only names a user id
    (flask-login's own key, or its remember-me cookie) signs nobody in."""
    user = make_user()
    client = make_page_client(user)
    with client.session_transaction() as session:
        secret = session["sid"]
        assert session["_user_id"] == str(user.id)
    assert only_record(user).key_hash == sessions.hash_secret(secret) != secret

    forged = browser_with(app, None)
    with forged.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert_sent_to_login(forged)

    remembered = browser_with(app, None)
    remembered.set_cookie("remember_token", encode_cookie(str(user.id)), domain=DOMAIN)
    assert_sent_to_login(remembered)

    other = make_user()
    swapped = browser_with(app, cookie(client))
    with swapped.session_transaction() as session:
        session["_user_id"] = str(other.id)  # the record says who is signed in, not this
    assert_sent_to_login(swapped)


def test_an_idle_session_is_refused(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    backdate(only_record(user), seen=14)  # within SESSION_IDLE_MINUTES (15): still fine
    assert signed_in(client)
    assert utcnow() - only_record(user).last_seen_at < timedelta(minutes=1)  # and stamped
    backdate(only_record(user), seen=16)
    assert_sent_to_login(client)
    row = only_record(user)
    assert row.end_reason == EndReason.IDLE
    assert SESSION_ENDED in client.get("/login").get_data(as_text=True)  # says why, once
    assert SESSION_ENDED not in client.get("/login").get_data(as_text=True)
    backdate(row, seen=-30)  # even "seen" again later, an ended session stays ended
    assert_sent_to_login(browser_with(app, cookie(client)))


def test_an_old_session_is_refused_however_busy(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    backdate(only_record(user), created=11 * 60)
    assert signed_in(client)
    backdate(only_record(user), created=2 * 60)  # 13 h ago, last seen just now
    assert_sent_to_login(client)
    assert only_record(user).end_reason == EndReason.EXPIRED


@pytest.mark.parametrize("config_overrides", [{"SESSION_IDLE_MINUTES": 2, "SESSION_MAX_HOURS": 1}])
def test_the_timeouts_are_settings(app, make_page_client, make_user, config_overrides):
    user = make_user()
    client = make_page_client(user)
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=1)
    backdate(only_record(user), seen=3)
    assert_sent_to_login(client)
    assert only_record(user).end_reason == EndReason.IDLE


def test_last_seen_is_stamped_coarsely(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    first = only_record(user).last_seen_at
    assert signed_in(client) and only_record(user).last_seen_at == first  # within the minute: no write
    backdate(only_record(user), seen=2)
    assert signed_in(client) and only_record(user).last_seen_at > first


def test_a_cookie_signed_long_ago_is_refused(app, make_page_client, make_user, monkeypatch):
    """Flask refuses a session cookie older than SESSION_MAX_HOURS before the record is asked."""
    user = make_user()
    month_ago = int(time.time()) - 30 * 86400
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: month_ago)
    client = make_page_client(user)
    monkeypatch.undo()
    assert only_record(user).ended_at is None  # the record alone would let it in
    assert_sent_to_login(client)


def test_sign_in_starts_a_fresh_session(app, make_page_client, make_user):
    """Session fixation: a cookie from before sign-in never becomes a signed-in one."""
    user = make_user()
    client = make_page_client()
    client.get("/login")
    before = cookie(client)
    assert before is not None  # the CSRF token lives in it
    client.sign_in(user)
    after = cookie(client)
    assert after != before
    assert_sent_to_login(browser_with(app, before))
    assert signed_in(browser_with(app, after))


def test_signing_in_again_ends_the_previous_session(app, make_page_client, make_user):
    first, second = make_user(), make_user()
    client = make_page_client(first)
    old = cookie(client)
    resp = login(client, second.username, PASSWORD, csrf_from="/documents")
    assert resp.status_code == 303
    assert only_record(first).end_reason == EndReason.SIGNED_OUT
    assert_sent_to_login(browser_with(app, old))
    assert client.get("/profile").get_data(as_text=True).count(second.full_name) >= 1


def test_a_failed_sign_in_keeps_the_session(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client(user)
    assert login(client, user.username, "wrong password", csrf_from="/documents").status_code == 401
    assert signed_in(client) and only_record(user).ended_at is None


def test_sessions_record_where_they_came_from(app, make_page_client, make_user):
    user = make_user()
    client = make_page_client()
    client.post("/login", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 " + "x" * 400},
                data={"csrf_token": client.csrf(), "username": user.username, "password": PASSWORD},
                environ_base={"REMOTE_ADDR": "203.0.113.9"})
    row = only_record(user)
    assert row.ip == "203.0.113.9" and row.user_agent.startswith("Mozilla/5.0") and len(row.user_agent) == 300
    assert row.created_at == row.last_seen_at and row.ended_at is None and len(row.key_hash) == 64


def test_page_cookies_are_httponly_and_lax_and_not_secure_over_http(app, make_page_client, make_user):
    client = make_page_client()
    resp = client.post("/login", data={"csrf_token": client.csrf(), "username": make_user().username,
                                       "password": PASSWORD})
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    assert "Expires" not in header  # a browser session cookie: gone when the browser closes


@pytest.mark.parametrize("config_overrides", [{"PUBLIC_URL": "https://files.clinic.example"}])
def test_cookies_are_secure_when_served_over_https(app, config_overrides):
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("config_overrides", [{"PUBLIC_URL": "https://files.clinic.example",
                                               "SESSION_COOKIE_SECURE": False}])
def test_an_explicit_cookie_setting_wins(app, config_overrides):
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_a_session_from_before_a_password_change_is_refused(app, make_page_client, make_user, make_token):
    """Signed in just as the password changed (after the change ended every session it saw)."""
    user = make_user()
    client = make_page_client(user)
    token = make_token(user)
    user.credentials_changed_at = utcnow() + timedelta(seconds=5)
    db.session.commit()
    assert_sent_to_login(client)
    assert only_record(user).end_reason == EndReason.PASSWORD_CHANGED
    assert api_status(app.test_client(), token) == 401


def test_touching_while_the_database_is_read_only_still_serves_pages(app, make_page_client, make_user, tmp_path,
                                                                     caplog):
    from test_faults import moved, read_only_app

    user = make_user()
    client = make_page_client(user)
    row = only_record(user)
    backdate(row, seen=5)  # a stamp is due
    row_id, seen = row.id, row.last_seen_at
    with read_only_app(app, tmp_path) as ro, ro.app_context():
        assert moved(client, ro).get("/account/sessions").status_code == 200  # a page that only reads
    assert f"could not record that session {row_id} was used" in caplog.text
    row = db.session.get(UserSession, row_id)
    assert row.ended_at is None and row.last_seen_at == seen


# -- disable, enable, set-password ------------------------------------------------------------------

def test_users_disable_ends_sessions_and_tokens(app, runner, make_page_client, make_user, make_token):
    user, bystander = make_user(), make_user()
    pages = [make_page_client(user), make_page_client(user)]
    others = make_page_client(bystander)
    tokens = [make_token(user), make_token(user, name="old")]
    api = app.test_client()
    assert all(api_status(api, token) == 200 for token in tokens)

    out = ok(runner.invoke(args=["users", "disable", user.username]))
    assert out == f"{user.username} disabled: 2 session(s) ended, 2 API token(s) revoked.\n"
    for page in pages:
        assert_sent_to_login(page)
    assert all(api_status(api, token) == 401 for token in tokens)
    assert {row.end_reason for row in records(user)} == {EndReason.DISABLED}
    assert all(row.revoked_at is not None for row in db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)))
    db.session.refresh(user)
    assert user.active is False and user.credentials_changed_at is not None
    assert login(make_page_client(), user.username, PASSWORD).status_code == 401
    assert signed_in(others)  # nobody else is touched

    out = ok(runner.invoke(args=["users", "enable", user.username]))
    assert "enabled" in out and "stay revoked" in out
    assert ok(runner.invoke(args=["users", "enable", user.username])) == f"{user.username} was not disabled.\n"
    assert signed_in(make_page_client(user))  # signs in again
    assert all(api_status(api, token) == 401 for token in tokens)  # old tokens stay revoked
    assert_sent_to_login(pages[0])  # and old sessions stay ended
    assert api_status(api, make_token(user)) == 200


def test_a_disabled_users_session_ends_at_the_next_request(app, make_page_client, make_user):
    """Disabled by any means (not only the CLI): the next request ends the session."""
    user = make_user()
    client = make_page_client(user)
    user.active = False
    db.session.commit()
    assert_sent_to_login(client)
    assert only_record(user).end_reason == EndReason.DISABLED


def test_users_set_password_from_stdin(app, runner, make_page_client, make_user, make_token):
    user = make_user()
    page = make_page_client(user)
    token = make_token(user)
    out = ok(runner.invoke(args=["users", "set-password", user.username], input="a brand new secret\n"))
    assert out == f"Password of {user.username} changed: 1 session(s) ended, 1 API token(s) revoked.\n"
    assert_sent_to_login(page)
    assert only_record(user).end_reason == EndReason.PASSWORD_CHANGED
    assert api_status(app.test_client(), token) == 401
    assert login(make_page_client(), user.username, PASSWORD).status_code == 401
    assert login(make_page_client(), user.username, "a brand new secret").status_code == 303
    db.session.refresh(user)
    assert user.active is True and user.credentials_changed_at is not None


@pytest.mark.parametrize("stdin, words", [("", "No password"), ("\n", "No password"), ("short\n", "at least 8")])
def test_users_set_password_refuses_bad_input(app, runner, make_page_client, make_user, stdin, words):
    user = make_user()
    page = make_page_client(user)
    fails(runner.invoke(args=["users", "set-password", user.username], input=stdin), words)
    assert signed_in(page)
    assert login(make_page_client(), user.username, PASSWORD).status_code == 303  # unchanged


def test_users_commands_name_unknown_users(runner, clinic):
    for command in ("disable", "enable", "set-password"):
        fails(runner.invoke(args=["users", command, "ghost"], input="long enough pw\n"), "No user 'ghost'")


# -- sessions list / revoke -----------------------------------------------------------------------

def test_sessions_list_and_json(app, runner, make_page_client, make_user):
    assert ok(runner.invoke(args=["sessions", "list"])) == "No sessions.\n"
    alice, bob = make_user(username="alice"), make_user(username="bob")
    make_page_client(alice)
    ended = make_page_client(alice)
    sign_out(ended)
    make_page_client(bob)

    lines = ok(runner.invoke(args=["sessions", "list"])).splitlines()
    assert lines[0].split() == ["ID", "USER", "CREATED", "LAST", "SEEN", "IP", "STATE"]
    assert len(lines) == 3 and [line.split()[1] for line in lines[1:]] == ["alice", "bob"]
    assert all(line.rstrip().endswith("active") for line in lines[1:])
    assert len({line.index("active") for line in lines[1:]}) == 1  # aligned

    mine = ok(runner.invoke(args=["sessions", "list", "--user", "bob"])).splitlines()
    assert len(mine) == 2 and mine[1].split()[1] == "bob"
    everything = ok(runner.invoke(args=["sessions", "list", "--all"])).splitlines()
    assert len(everything) == 4 and "signed_out" in everything[2]

    data = json.loads(ok(runner.invoke(args=["sessions", "list", "--user", "alice", "--all", "--json"])))
    assert [(row["user"], row["state"]) for row in data] == [("alice", "active"), ("alice", "signed_out")]
    assert set(data[0]) == {"id", "user", "user_id", "created_at", "last_seen_at", "ended_at", "end_reason",
                            "ip", "user_agent", "state"}
    assert data[0]["ended_at"] is None and data[1]["end_reason"] == "signed_out"
    assert json.loads(ok(runner.invoke(args=["sessions", "list", "--json", "--user", "bob"])))[0]["ip"] == "127.0.0.1"
    fails(runner.invoke(args=["sessions", "list", "--user", "ghost"]), "No user 'ghost'")


def test_sessions_list_shows_lapsed_sessions_as_such(app, runner, make_page_client, make_user):
    user = make_user()
    make_page_client(user)
    backdate(only_record(user), seen=20)
    assert ok(runner.invoke(args=["sessions", "list"])) == "No sessions.\n"
    assert ok(runner.invoke(args=["sessions", "list", "--all"])).splitlines()[1].rstrip().endswith("idle")


def test_sessions_revoke_one_and_all(app, runner, make_page_client, make_user):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    first, second = make_page_client(alice), make_page_client(alice)
    bobs = make_page_client(bob)
    target = records(alice)[0]

    assert ok(runner.invoke(args=["sessions", "revoke", str(target.id)])) == f"Session {target.id} (alice) revoked.\n"
    assert_sent_to_login(first)
    assert signed_in(second) and signed_in(bobs)
    assert records(alice)[0].end_reason == EndReason.REVOKED
    ok(runner.invoke(args=["sessions", "revoke", str(target.id)]))  # twice is fine

    assert ok(runner.invoke(args=["sessions", "revoke", "--user", "alice", "--all"])) == "1 session(s) of alice revoked.\n"
    assert_sent_to_login(second)
    assert signed_in(bobs)

    fails(runner.invoke(args=["sessions", "revoke", "999"]), "No session with id 999")
    fails(runner.invoke(args=["sessions", "revoke"]), "either a session ID")
    fails(runner.invoke(args=["sessions", "revoke", "--all"]), "either a session ID")
    fails(runner.invoke(args=["sessions", "revoke", "1", "--user", "alice", "--all"]), "either a session ID")
    fails(runner.invoke(args=["sessions", "revoke", "--user", "ghost", "--all"]), "No user 'ghost'")
    assert runner.invoke(args=["sessions", "revoke", "abc"]).exit_code == 2


# -- the sessions page -------------------------------------------------------------------------------

def test_the_profile_links_to_the_sessions_page(make_page_client, make_user):
    page = make_page_client(make_user()).get("/profile").get_data(as_text=True)
    assert 'href="/account/sessions"' in page


def test_the_sessions_page_needs_sign_in(make_page_client):
    resp = make_page_client().get("/account/sessions")
    assert resp.status_code == 302 and resp.location == "/login?next=/account/sessions"


def test_the_sessions_page_lists_and_signs_out_the_others(app, make_page_client, make_user):
    user, stranger = make_user(), make_user()
    here = make_page_client()
    here.post("/login", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/126.0 Safari/537.36"},
              data={"csrf_token": here.csrf(), "username": user.username, "password": PASSWORD})
    phone = make_page_client()
    phone.post("/login", headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Version/17.5 Safari/604.1"},
               data={"csrf_token": phone.csrf(), "username": user.username, "password": PASSWORD})
    laptop = make_page_client(user)
    theirs = make_page_client(stranger)
    ended = make_page_client(user)
    sign_out(ended)

    resp = here.get("/account/sessions")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "private, no-store"
    assert body.count("data-session-id=") == 3  # open ones only, and only this user's
    assert "Chrome on Windows" in body and "Safari on iPhone" in body
    assert body.count("This device") == 1
    here_id, phone_id = (row.id for row in records(user)[:2])
    theirs_id = records(stranger)[0].id
    this_row = body.split(f'data-session-id="{here_id}"')[1].split("</li>")[0]
    assert "This device" in this_row and "/end" not in this_row  # Sign out in the header does that

    token = here.csrf("/account/sessions")
    assert here.post(f"/account/sessions/{phone_id}/end").status_code == 400  # CSRF
    assert here.post(f"/account/sessions/{theirs_id}/end", data={"csrf_token": token}).status_code == 404
    assert here.post(f"/account/sessions/{here_id}/end", data={"csrf_token": token}).status_code == 400
    resp = here.post(f"/account/sessions/{phone_id}/end", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.location == "/account/sessions"
    assert_sent_to_login(phone)
    assert signed_in(laptop) and signed_in(here) and signed_in(theirs)
    assert here.post(f"/account/sessions/{phone_id}/end", data={"csrf_token": token}).status_code == 404

    resp = here.post("/account/sessions/others/end", data={"csrf_token": token})
    assert resp.status_code == 303
    assert "Signed out 1 other session." in here.get("/account/sessions").get_data(as_text=True)
    assert_sent_to_login(laptop)
    assert signed_in(here) and signed_in(theirs)
    assert {r.end_reason for r in records(user)} == {None, EndReason.REVOKED, EndReason.SIGNED_OUT}
    assert "You are not signed in anywhere else." in here.get("/account/sessions").get_data(as_text=True)


def test_device_names():
    from app.web.auth import device_name

    assert device_name("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15") \
        == "Safari on macOS"
    assert device_name("Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36") == "Chrome on Android"
    assert device_name("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36 Edg/126.0") \
        == "Edge on Windows"
    assert device_name("Werkzeug/3.1") == "Werkzeug"
    assert device_name(None) == "Unknown device"


def test_accounts_services_refuse_short_passwords(make_user):
    from app.errors import BadRequest

    with pytest.raises(BadRequest):
        accounts.set_password(make_user(), "short")


def test_a_password_change_revokes_outstanding_signed_links(client, make_user, make_token, make_file, app):
    """Links minted before a password change (view links and Candid's signed URL) stop working."""
    import time as _time

    from app.services import accounts as accounts_service

    patient = make_user("patient")
    row = make_file(patient, "notes.txt")
    fullpath = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": make_token(patient)}).json[
        "data"]["fullpath"]
    assert client.get(fullpath).status_code == 200
    _time.sleep(1.1)  # links carry whole seconds
    accounts_service.set_password(patient, "a brand new password")
    assert client.get(fullpath).status_code == 404
