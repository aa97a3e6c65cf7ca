"""The pages in English and Spanish (issue 12): the catalogue is complete and current, the
language is chosen from the user, the cookie or the browser, and the API stays English."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from conftest import sample

from app.extensions import db
from app.i18n import COOKIE
from app.models import User
from app.web.script_strings import SCRIPT_STRINGS

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "translations" / "es" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
DOMAIN = "chartbox.test"
ES = {"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}


def _ids(catalog) -> set:
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}


def _po(path: Path = PO):
    with path.open("rb") as fh:
        return read_po(fh, locale="es")


def _texts(catalog) -> dict:
    """{msgid: msgstr} with plural ids and forms as tuples (the .po and .mo readers differ)."""
    def norm(value):
        return value if isinstance(value, str) else tuple(value)
    return {norm(m.id): norm(m.string) for m in catalog if m.id}


# -- the catalogue -------------------------------------------------------------------------------

def test_every_message_has_a_spanish_translation():
    catalog = _po()
    empty = [m.id for m in catalog if m.id and (not m.string or not all(m.string if isinstance(m.string, tuple)
                                                                            else [m.string]))]
    assert empty == [] and not [m.id for m in catalog if m.id and m.fuzzy]
    assert len(catalog) > 300


def test_catalogue_is_up_to_date_with_the_sources(tmp_path):
    """`make translations` was run: the .po holds exactly the strings the code and templates mark,
    and the committed .mo is compiled from it."""
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(ROOT / "babel.cfg"),
                    "-k", "_l", "-k", "lazy_gettext", "-k", "N_", "--no-location", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    extracted, translated = _ids(_po(pot)), _ids(_po())
    assert sorted(map(str, extracted - translated)) == [], "new strings: run `make translations` and translate them"
    assert sorted(map(str, translated - extracted)) == [], "strings no longer used: run `make translations`"
    with MO.open("rb") as fh:
        compiled = _texts(read_mo(fh))
    assert compiled == _texts(_po()), "the .mo is older than the .po: run `make translations`"


def test_the_script_catalogue_lists_every_string_chartbox_js_translates():
    script = (ROOT / "static" / "chartbox.js").read_text()
    used = set(re.findall(r'\bt\("((?:[^"\\]|\\.)*)"', script))
    assert used == set(SCRIPT_STRINGS)


# -- choosing the language -----------------------------------------------------------------------

def test_default_is_english_and_accept_language_picks_spanish(make_page_client):
    client = make_page_client()
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page and "Sign in to Chartbox" in page
    page = client.get("/login", headers=ES).get_data(as_text=True)
    assert '<html lang="es">' in page and "Iniciar sesión en Chartbox" in page and "Contraseña" in page
    page = client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in page  # not offered: English


def test_signed_in_choice_is_saved_and_outlives_sign_out(make_page_client, make_user, make_file):
    alice = make_user()
    make_file(alice, "letter.pdf")
    client = make_page_client(alice)
    assert "My documents" in client.get("/documents").get_data(as_text=True)
    resp = client.post("/language", data={"csrf_token": client.csrf("/documents"), "locale": "es",
                                          "next": "/documents"})
    assert resp.status_code == 303 and resp.location == "/documents"
    page = client.get("/documents").get_data(as_text=True)
    assert '<html lang="es">' in page and "Mis documentos" in page and "Documento PDF" in page
    assert '<script type="application/json" id="chartbox-strings">' in page and "Subiendo" in page
    assert db.session.get(User, alice.id).locale == "es"
    # The saved choice, not the cookie: a new browser that sends no Accept-Language still gets Spanish.
    client.post("/logout", data={"csrf_token": client.csrf("/documents")})
    fresh = make_page_client(alice)
    assert fresh.get_cookie(COOKIE, domain=DOMAIN) is None
    assert "Mis documentos" in fresh.get("/documents").get_data(as_text=True)


def test_anonymous_choice_lives_in_a_cookie(make_page_client):
    client = make_page_client()
    resp = client.post("/language", data={"csrf_token": client.csrf(), "locale": "es", "next": "/login"})
    assert resp.status_code == 303 and client.get_cookie(COOKIE, domain=DOMAIN).value == "es"
    assert "Iniciar sesión en Chartbox" in client.get("/login").get_data(as_text=True)
    client.post("/language", data={"csrf_token": client.csrf(), "locale": "en", "next": "/login"})
    assert "Sign in to Chartbox" in client.get("/login", headers=ES).get_data(as_text=True)  # the choice wins


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"])
def test_switcher_never_redirects_off_site(make_page_client, target):
    client = make_page_client()
    resp = client.post("/language", data={"csrf_token": client.csrf(), "locale": "es", "next": target})
    assert resp.status_code == 303 and resp.location.startswith("/") and not resp.location.startswith("//")


def test_switcher_refuses_unknown_languages_and_needs_csrf(make_page_client):
    client = make_page_client()
    assert client.post("/language", data={"csrf_token": client.csrf(), "locale": "xx"}).status_code == 400
    assert client.post("/language", data={"locale": "es"}).status_code == 400
    assert client.get_cookie(COOKIE, domain=DOMAIN) is None


def test_flash_and_upload_refusal_in_spanish_but_english_on_the_vsee_api(make_page_client, make_user, make_token,
                                                                            client):
    alice = make_user()
    alice.locale = "es"
    db.session.commit()
    page_client = make_page_client(alice)
    data = {"csrf_token": page_client.csrf("/documents"), "category": "user_document", "target_type": "user",
            "target_id": "", "next": "/documents", "files": [(io.BytesIO(b""), "empty.pdf"),
                                                               (io.BytesIO(sample("letter.pdf")), "carta.pdf")]}
    resp = page_client.post("/documents/upload", data=data, content_type="multipart/form-data")
    page = page_client.get(resp.location).get_data(as_text=True)
    assert "«empty.pdf» no se subió: El archivo está vacío" in page.replace("&#34;", '"')
    assert "Se subió «carta.pdf»." in page
    # The same refusal through VSee: English, whatever the caller's languages.
    provider = make_user("provider")
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(provider), **ES},
                       data={"file": (io.BytesIO(b""), "empty.pdf"), "meta.target.id": str(alice.id)})
    assert resp.status_code == 400
    assert resp.get_json()["message"].startswith("The file is empty")


def test_dates_use_the_languages_month_names(make_page_client, make_user, make_file):
    from app.web.display import human_datetime

    alice = make_user()
    row = make_file(alice, "letter.pdf")
    client = make_page_client(alice)
    client.post("/language", data={"csrf_token": client.csrf("/documents"), "locale": "es", "next": "/"})
    page = client.get(f"/documents/{row.public_id}/details").get_data(as_text=True)
    assert "Quién lo abrió" in page
    with client.application.test_request_context(headers=ES):
        assert human_datetime(row.created_at).split()[1] != row.created_at.strftime("%b")


def test_cli_create_and_set_locale(runner, clinic):
    result = runner.invoke(args=["users", "create", "--account", clinic.code, "--role", "patient",
                                 "--username", "maria", "--full-name", "María López", "--locale", "es"])
    assert result.exit_code == 0, result.output
    user = db.session.scalars(db.select(User).where(User.username == "maria")).one()
    assert user.locale == "es"
    result = runner.invoke(args=["users", "set-locale", "maria", "--locale", "en"])
    assert result.exit_code == 0, result.output
    db.session.refresh(user)
    assert user.locale == "en"
    assert runner.invoke(args=["users", "set-locale", "maria", "--locale", "fr"]).exit_code != 0
