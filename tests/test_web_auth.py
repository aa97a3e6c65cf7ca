"""Sign-in pages: CSRF, a generic error, throttling, safe `next`, sign-out, page headers."""
import pytest

from app.web.auth import BAD_CREDENTIALS


def _login(client, username, password, **extra):
    data = {"csrf_token": client.csrf(), "username": username, "password": password, **extra}
    return client.post("/login", data=data)


def test_login_page_renders_a_labelled_form(make_page_client):
    resp = make_page_client().get("/login")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert '<label for="username">Username</label>' in body and 'autocomplete="current-password"' in body
    assert "Sign out" not in body


def test_sign_in_goes_to_the_role_home(make_page_client, make_user):
    patient, provider = make_user("patient"), make_user("provider")
    assert _login(make_page_client(), patient.username, "correct horse battery").location == "/documents"
    assert _login(make_page_client(), provider.username, "correct horse battery").location == "/patients"


def test_login_requires_csrf(make_page_client, make_user):
    user = make_user()
    client = make_page_client()
    resp = client.post("/login", data={"username": user.username, "password": "correct horse battery"})
    assert resp.status_code == 400 and "form has expired" in resp.get_data(as_text=True)
    assert client.get("/documents").status_code == 302  # still signed out


@pytest.mark.parametrize("username", ["patient1", "nobody-here"])
def test_bad_credentials_get_one_generic_message(make_page_client, make_user, username):
    make_user(username="patient1")
    resp = _login(make_page_client(), username, "wrong password")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 401 and BAD_CREDENTIALS in body
    assert "wrong password" not in body  # the password is never echoed back


def test_missing_fields_are_named(make_page_client):
    resp = _login(make_page_client(), "", "")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Enter your username." in body and "Enter your password." in body


def test_sign_in_is_throttled(make_page_client, make_user, app):
    app.config["LOGIN_ATTEMPTS"] = 3
    user = make_user()
    client = make_page_client()
    for _ in range(3):
        assert _login(client, user.username, "nope nope").status_code == 401
    resp = _login(client, user.username, "correct horse battery")  # even the right password waits
    assert resp.status_code == 429 and "Too many failed sign-in attempts" in resp.get_data(as_text=True)


@pytest.mark.parametrize("target, expected", [
    ("/documents/visits", "/documents/visits"),
    ("/profile?x=1", "/profile?x=1"),
    ("https://evil.example/", "/documents"),
    ("//evil.example/", "/documents"),
    ("/\\evil.example", "/documents"),
    ("javascript:alert(1)", "/documents"),
    ("/documents\r\nSet-Cookie: x=1", "/documents"),
])
def test_next_is_followed_only_to_local_paths(make_page_client, make_user, target, expected):
    user = make_user()
    resp = _login(make_page_client(), user.username, "correct horse battery", next=target)
    assert resp.status_code == 303 and resp.location == expected


def test_pages_need_sign_in_and_remember_where_you_were(make_page_client):
    resp = make_page_client().get("/documents/visits")
    assert resp.status_code == 302 and resp.location == "/login?next=/documents/visits"
    page = make_page_client().get(resp.location).get_data(as_text=True)
    assert 'name="next" type="hidden" value="/documents/visits"' in page


def test_sign_out_needs_a_post_with_csrf(make_page_client, make_user):
    client = make_page_client(make_user())
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/documents").status_code == 200
    page = client.get("/documents").get_data(as_text=True)
    assert "Sign out" in page
    resp = client.post("/logout", data={"csrf_token": client.csrf("/documents")})
    assert resp.status_code == 303 and resp.location == "/login"
    assert client.get("/documents").status_code == 302


def test_inactive_users_cannot_sign_in(make_page_client, make_user, app):
    from app.extensions import db

    user = make_user()
    user.active = False
    db.session.commit()
    assert _login(make_page_client(), user.username, "correct horse battery").status_code == 401


def test_pages_carry_a_strict_csp_and_no_inline_code(make_page_client, make_user, make_file):
    user = make_user()
    make_file(user, "photo.jpg")
    client = make_page_client(user)
    for path in ("/login", "/documents", "/documents/visits", "/profile", "/nowhere"):
        resp = client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        body = resp.get_data(as_text=True)
        assert "<script>" not in body and " style=" not in body and " onclick=" not in body
        assert "<style" not in body


def test_signed_in_pages_are_not_cached(make_page_client, make_user):
    resp = make_page_client(make_user()).get("/documents")
    assert resp.headers["Cache-Control"] == "private, no-store"
