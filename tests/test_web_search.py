"""The Documents toolbar through the test client: search, filters, order and view in the URL,
on the patient's page and the provider's chart page; and `q`/`sort` on the VSee list."""
import io
import re
from html import unescape

import pytest
from builders import docx, small_png, text_pdf

from app.models import Category, Channel
from app.services import files
from app.services.audit import Origin

CLI = Origin(Channel.CLI)
LAB = text_pdf([["Chartbox lab report", "Hemoglobin 13.9 g/dL"], ["Ferritin within range"]])


def _upload(actor, data, name, patient=None, category=Category.USER_DOCUMENT, visit=None):
    target = files.Target.chart(visit.patient, visit) if visit else files.Target.chart(patient or actor)
    return files.upload(actor, CLI, io.BytesIO(data), name, category, target)


@pytest.fixture
def people(make_user, make_visit):
    alice, bob, provider = make_user(full_name="Alice Moreno"), make_user(), make_user("provider")
    _upload(alice, LAB, "March results.pdf")
    _upload(alice, small_png(), "Insurance card.png")
    _upload(provider, docx(["Referral to cardiology"]), "Referral.docx", patient=alice)
    visit = make_visit(alice)
    hidden = _upload(provider, b"Internal note: zoster\n", "internal.txt", category=Category.INTAKE_ATTACHMENT,
                     visit=visit)
    assert not hidden.visible
    _upload(bob, text_pdf([["tinnitus both ears"]]), "audiogram.pdf")
    return alice, bob, provider


def _names(page: str) -> list[str]:
    return [unescape(n) for n in re.findall(r'class="file-name"[^>]*data-name="([^"]+)"', page)]


def test_a_word_inside_a_pdf_finds_it_and_the_page_says_so(make_page_client, people):
    alice, _, _ = people
    resp = make_page_client(alice).get("/documents?q=hemoglobin")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert _names(page) == ["March results.pdf"]
    assert "1 result for “hemoglobin”" in page
    assert 'value="hemoglobin"' in page  # the box keeps what was typed
    assert 'href="/documents">Clear filters</a>' in page
    assert 'role="search"' in page and 'method="get"' in page


def test_no_match_shows_an_empty_state_not_the_first_use_one(make_page_client, people):
    alice, _, _ = people
    page = make_page_client(alice).get("/documents?q=gastroscopy").get_data(as_text=True)
    assert "0 results for “gastroscopy”" in page and "No documents match" in page
    assert "No documents yet" not in page and _names(page) == []


def test_a_patient_never_finds_another_patients_or_a_hidden_file_by_its_words(make_page_client, people):
    alice, bob, _ = people
    for word in ("tinnitus", "audiogram", "zoster", "internal"):
        page = make_page_client(alice).get(f"/documents?q={word}").get_data(as_text=True)
        assert _names(page) == [] and f"0 results for “{word}”" in page
    assert _names(make_page_client(bob).get("/documents?q=hemoglobin").get_data(as_text=True)) == []


def test_filters_and_order_live_in_the_url(make_page_client, people):
    alice, _, _ = people
    client = make_page_client(alice)
    page = client.get("/documents?kind=pdf").get_data(as_text=True)
    assert _names(page) == ["March results.pdf"] and "1 result" in page
    assert '<option value="pdf" selected>' in page
    page = client.get("/documents?source=team").get_data(as_text=True)
    assert _names(page) == ["Referral.docx"]
    page = client.get("/documents?source=me&sort=name").get_data(as_text=True)
    assert _names(page) == ["Insurance card.png", "March results.pdf"]
    assert _names(client.get("/documents?sort=-name").get_data(as_text=True)) == [
        "Referral.docx", "March results.pdf", "Insurance card.png"]
    assert _names(client.get("/documents?sort=size").get_data(as_text=True))[0] == "Insurance card.png"
    assert _names(client.get("/documents?from=2000-01-01&to=2000-12-31").get_data(as_text=True)) == []
    page = client.get("/documents?category=user_document&q=card").get_data(as_text=True)
    assert _names(page) == ["Referral.docx", "Insurance card.png"]  # "cardiology" inside one
    assert _names(client.get("/documents?q=card&kind=image").get_data(as_text=True)) == ["Insurance card.png"]


@pytest.mark.parametrize("query, note", [
    ("kind=bogus", "is not a file type"),
    ("sort=%27%3B--", "is not a sort order"),
    ("from=yesterday", "is not a date"),
    ("to=2026-13-45", "is not a date"),
    ("category=user_avatar", "not listed on this page"),
    ("category=%00", "is not a category"),
    ("source=everyone", "is not a source"),
    ("view=carousel", None),
    ("q=%00%22NEAR(*", None),
    ("q=" + "x" * 10_000, None),
    ("from=2026-03-01&to=2026-01-01", "swapped"),
])
def test_odd_parameters_are_left_out_with_a_message_never_an_error(make_page_client, people, query, note):
    alice, _, provider = people
    for client, path in ((make_page_client(alice), "/documents"), (make_page_client(provider), f"/patients/{alice.id}")):
        resp = client.get(f"{path}?{query}")
        assert resp.status_code == 200, query
        page = resp.get_data(as_text=True)
        if note and not (note == "is not a source" and path != "/documents"):
            assert note in unescape(page), (path, query)


def test_pages_keep_the_search_and_the_view(make_page_client, make_user, app):
    alice = make_user()
    app.config["WEB_PAGE_SIZE"] = 2
    for n in range(5):
        _upload(alice, f"Visit note {n}: ferritin\n".encode(), f"note {n}.txt")
    page = make_page_client(alice).get("/documents?q=ferritin&view=grid&sort=oldest").get_data(as_text=True)
    assert "5 results for “ferritin”" in page
    assert _names(page) == ["note 0.txt", "note 1.txt"]
    nxt = unescape(re.search(r'rel="next" href="([^"]+)"', page).group(1))
    assert "q=ferritin" in nxt and "view=grid" in nxt and "sort=oldest" in nxt and "page=2" in nxt
    assert 'class="files files-grid"' in page
    second = make_page_client(alice).get(nxt).get_data(as_text=True)
    assert _names(second) == ["note 2.txt", "note 3.txt"]
    # The switch goes back to the list, keeping the search; Clear keeps the view.
    assert 'href="/documents?q=ferritin&amp;sort=oldest"' in page
    assert 'href="/documents?view=grid">Clear filters' in page


def test_the_upload_form_comes_back_to_the_search(make_page_client, people):
    alice, _, _ = people
    page = make_page_client(alice).get("/documents?q=card&kind=image").get_data(as_text=True)
    assert 'name="next" type="hidden" value="/documents?q=card&amp;kind=image"' in page \
        or 'value="/documents?q=card&amp;kind=image"' in page


def test_the_providers_chart_page_searches_the_chart(make_page_client, people):
    alice, _, provider = people
    client = make_page_client(provider)
    page = client.get(f"/patients/{alice.id}?q=cardiology").get_data(as_text=True)
    assert _names(page) == ["Referral.docx"] and "1 result for “cardiology”" in page
    assert 'name="source"' not in page  # "added by me / my care team" is the patient's filter
    assert 'name="category"' in page and 'name="kind"' in page
    page = client.get(f"/patients/{alice.id}?q=tinnitus").get_data(as_text=True)
    assert _names(page) == [] and "No documents match" in page


def test_without_a_query_the_pages_are_as_before(make_page_client, people):
    alice, _, _ = people
    page = make_page_client(alice).get("/documents").get_data(as_text=True)
    assert "3 files" in page and "Clear filters" not in page and "result for" not in page


# -- VSee ------------------------------------------------------------------------------------------

def test_vsee_list_takes_q_and_sort(client, people, make_token):
    alice, _, provider = people
    headers = {"X-ApiToken": make_token(provider)}
    url = f"/api_v3/files?target_type=user&target_id={alice.id}"
    resp = client.get(url + "&q=hemoglobin", headers=headers)
    assert resp.status_code == 200 and [f["name"] for f in resp.json["data"]] == ["March results.pdf"]
    assert resp.headers["X-Total-Count"] == "1"
    resp = client.get(url + "&sort=name", headers=headers)
    assert [f["name"] for f in resp.json["data"]] == ["Insurance card.png", "March results.pdf", "Referral.docx"]
    resp = client.get(url + "&q=%22NEAR(%00*&sort=-size", headers=headers)
    assert resp.status_code == 200
    resp = client.get(url + "&sort=sideways", headers=headers)
    assert resp.status_code == 400 and resp.json["code"] == 400 and "sort" in resp.json["message"]
    patient = client.get("/api_v3/files?q=zoster&include_shared=true", headers={"X-ApiToken": make_token(alice)})
    assert patient.status_code == 200 and patient.json["data"] == [] and patient.headers["X-Total-Count"] == "0"


def test_vsee_next_link_keeps_q_and_sort(client, make_user, make_token):
    alice = make_user()
    for n in range(3):
        _upload(alice, f"ferritin {n}\n".encode(), f"n{n}.txt")
    resp = client.get("/api_v3/files?q=ferritin&sort=name&per_page=2", headers={"X-ApiToken": make_token(alice)})
    assert [f["name"] for f in resp.json["data"]] == ["n0.txt", "n1.txt"]
    assert "q=ferritin" in resp.headers["Link"] and "sort=name" in resp.headers["Link"]
