"""tscharts' own Python client (tschartslib==1.1), unchanged, against a live Chartbox.

The library's request classes (tschartslib/tscharts/tscharts.py: Login, Logout;
tschartslib/image/image.py: CreateImage, GetImage, DeleteImage) build the URL from host and
port, send JSON with `Authorization: Token <token>` when they hold a token, and `send()`
answers (status, json), the json being {} unless the status is 200. The expectations are the
ones tschartslib's own integration tests (the TestTS* classes in those files) hold the original
server to, apart from the differences Chartbox documents (README, "tscharts: sign in and
images"): real PNG/JPEG data, and clinic/station ids kept as sent.
"""
from __future__ import annotations

import base64
import itertools

import pytest
from conftest import sample

pytest.importorskip("tschartslib.image.image", reason="needs tschartslib==1.1 (pip install tschartslib==1.1)")
from tschartslib.image.image import CreateImage, DeleteImage, GetImage
from tschartslib.tscharts.tscharts import Login, Logout

TIMEOUT = 10
TYPES = ["Headshot", "Xray", "Surgery", "Audiogram"]
IMAGE_KEYS = {"id", "patient", "clinic", "station", "type", "data"}
_ids = itertools.count(5000)  # clinic and station numbers unique to each test


def b64(name: str) -> str:
    return base64.b64encode(sample(name)).decode("ascii")


@pytest.fixture(scope="module")
def token(live) -> str:
    """A token from tschartslib's own Login, as its TestTSImage.setUp gets one."""
    status, body = Login(live.host, live.port, live.provider_username, live.password).send(timeout=TIMEOUT)
    assert status == 200, body
    return body["token"]


def create(live, token, image_type="Xray", name="xray.png", clinic=None, station=None) -> int:
    request = CreateImage(live.host, live.port, token)
    request.setPatient(live.patient_id)
    request.setType(image_type)
    request.setData(b64(name))
    if clinic is not None:
        request.setClinic(clinic)
    if station is not None:
        request.setStation(station)
    status, body = request.send(timeout=TIMEOUT)
    assert status == 200, (image_type, name)
    assert set(body) == {"id"} and isinstance(body["id"], int)
    return body["id"]


def search(live, token, **filters):
    """GetImage with setters named like its own (setPatient, setType, ..., setSort, setNewest)."""
    request = GetImage(live.host, live.port, token)
    for name, value in filters.items():
        getattr(request, f"set{name[0].upper()}{name[1:]}")(value)
    return request.send(timeout=TIMEOUT)


# --- login ------------------------------------------------------------------------------------

def test_login_answers_a_token(live):
    status, body = Login(live.host, live.port, live.provider_username, live.password).send(timeout=TIMEOUT)
    assert status == 200
    assert isinstance(body["token"], str) and body["token"]
    assert body["id"] == live.provider_id


def test_login_failures_answer_tschartslibs_statuses(live):
    # tschartslib's testInvalidPassword and testUnknownUsernameMissingPassword
    assert Login(live.host, live.port, live.provider_username, "not-the-password").send(timeout=TIMEOUT) == \
        (403, {})
    assert Login(live.host, live.port, live.provider_username, None).send(timeout=TIMEOUT) == (400, {})


# --- create / get -----------------------------------------------------------------------------

@pytest.mark.parametrize("image_type", TYPES)
def test_create_then_get_each_type(live, token, image_type):
    clinic, station = next(_ids), next(_ids)
    image_id = create(live, token, image_type, clinic=clinic, station=station)
    status, body = search(live, token, id=image_id)
    assert status == 200
    assert set(body) == IMAGE_KEYS
    assert body == {"id": image_id, "patient": live.patient_id, "clinic": clinic, "station": station,
                    "type": image_type, "data": b64("xray.png")}


def test_a_jpeg_headshot_without_clinic_or_station(live, token):
    image_id = create(live, token, "Headshot", "insurance-front.jpg")
    status, body = search(live, token, id=image_id)
    assert status == 200
    assert (body["type"], body["clinic"], body["station"]) == ("Headshot", None, None)
    assert base64.b64decode(body["data"]) == sample("insurance-front.jpg")


# --- search -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gallery(live, token):
    """Three images in one clinic, two stations, two types; ids in creation order."""
    clinic, first, second = next(_ids), next(_ids), next(_ids)
    ids = [create(live, token, "Xray", clinic=clinic, station=first),
           create(live, token, "Headshot", clinic=clinic, station=first),
           create(live, token, "Xray", clinic=clinic, station=second)]
    return {"clinic": clinic, "stations": (first, second), "ids": ids}


def test_search_by_patient(live, token, gallery):
    status, body = search(live, token, patient=live.patient_id)
    assert status == 200
    assert isinstance(body, list) and set(gallery["ids"]) <= set(body)


def test_search_by_type(live, token, gallery):
    status, body = search(live, token, patient=live.patient_id, clinic=gallery["clinic"], type="Xray")
    assert (status, body) == (200, [gallery["ids"][0], gallery["ids"][2]])
    status, body = search(live, token, type="Headshot")
    assert status == 200 and gallery["ids"][1] in body and gallery["ids"][0] not in body


def test_search_by_clinic(live, token, gallery):
    assert search(live, token, clinic=gallery["clinic"]) == (200, gallery["ids"])


def test_search_by_station(live, token, gallery):
    first, second = gallery["stations"]
    assert search(live, token, station=first) == (200, gallery["ids"][:2])
    assert search(live, token, station=second, clinic=gallery["clinic"]) == (200, gallery["ids"][2:])


def test_sort_true_lists_the_newest_first(live, token, gallery):
    assert search(live, token, clinic=gallery["clinic"], sort="true") == (200, gallery["ids"][::-1])
    assert search(live, token, clinic=gallery["clinic"], sort="false") == (200, gallery["ids"])
    assert search(live, token, clinic=gallery["clinic"], sort="True")[0] == 400  # as tschartslib expects


def test_newest_true_returns_the_newest_image_itself(live, token, gallery):
    status, body = search(live, token, patient=live.patient_id, clinic=gallery["clinic"], type="Xray",
                          newest="true")
    assert status == 200
    assert set(body) == IMAGE_KEYS
    assert (body["id"], body["type"], body["station"]) == (gallery["ids"][2], "Xray", gallery["stations"][1])
    assert body["data"] == b64("xray.png")


def test_a_search_that_matches_nothing_is_404(live, token, gallery):
    assert search(live, token, clinic=gallery["clinic"], type="Audiogram") == (404, {})


# --- delete -----------------------------------------------------------------------------------

def test_delete_then_get_is_404(live, token):
    image_id = create(live, token, "Surgery")
    assert DeleteImage(live.host, live.port, token, image_id).send(timeout=TIMEOUT) == (200, {})
    assert search(live, token, id=image_id) == (404, {})
    assert DeleteImage(live.host, live.port, token, image_id).send(timeout=TIMEOUT) == (404, {})


# --- logout -----------------------------------------------------------------------------------

def test_logout_as_tschartslib_sends_it(live):
    """tschartslib's Logout(host, port) holds no token, so it sends no Authorization header at
    all; its own testLogoutLoggedIn/testLogoutNotLoggedIn expect 200, twice in a row."""
    assert Logout(live.host, live.port).send(timeout=TIMEOUT) == (200, {})
    assert Logout(live.host, live.port).send(timeout=TIMEOUT) == (200, {})
