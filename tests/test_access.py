"""design.md's access matrix, for every VSee endpoint and the view links.

The expectations below are written out from design.md by hand (not derived from access.RULES),
so a wrong rule in access.py fails here:

| category          | patient (own)                 | provider (same account)    | admin |
| user_document     | view, upload, rename, delete  | view, upload, rename, del. | all   |
|   (staff's: a clinical record; the patient may only view it)                                  |
| intake_attachment | view, upload to own visit     | view, upload, rename, del. | all   |
| user_consent      | view, upload                  | view, upload               | all   |
| user_avatar       | view, replace, delete         | view                       | all   |

Out of scope (another clinic, another patient) is 404; visible but not allowed is 403.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from conftest import sample
from sqlalchemy import select

from app.extensions import db
from app.models import Action, Category, Role, StoredFile, User, Visit
from app.services import files
from app.services.audit import Origin

ACTORS = ["patient", "provider", "admin", "other_patient", "other_clinic_provider", "other_clinic_admin"]
CATEGORIES = [c.value for c in Category]
# Text files keep the matrix fast (no PDF parser child per file); validation has its own tests.
SAMPLE = {"user_document": "notes.txt", "intake_attachment": "vitals.csv",
          "user_consent": "notes.txt", "user_avatar": "photo.jpg"}

# action -> actor -> categories allowed (inside scope); anything else inside scope is 403
ALLOWED = {
    "view": {"patient": set(CATEGORIES), "provider": set(CATEGORIES), "admin": set(CATEGORIES)},
    "upload": {"patient": set(CATEGORIES),
               "provider": {"user_document", "intake_attachment", "user_consent"},
               "admin": set(CATEGORIES)},
    "rename": {"patient": {"user_document"}, "provider": {"user_document", "intake_attachment"},
               "admin": set(CATEGORIES)},
    "delete": {"patient": {"user_document", "user_avatar"},
               "provider": {"user_document", "intake_attachment"}, "admin": set(CATEGORIES)},
}
OUT_OF_SCOPE = {"other_patient", "other_clinic_provider", "other_clinic_admin"}


def expected(action: str, actor: str, category: str) -> int:
    if actor in OUT_OF_SCOPE:
        return 404
    return 200 if category in ALLOWED[action][actor] else 403


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]
    visit: Visit
    files: dict[str, StoredFile]

    def headers(self, actor: str) -> dict:
        return {"X-ApiToken": self.tokens[actor]}


@pytest.fixture
def world(app, clinic, make_account, make_user, make_token, make_visit, make_file) -> World:
    other = make_account("clinic-b", "Clinic B")
    users = {
        "patient": make_user("patient", password=None),
        "other_patient": make_user("patient", password=None),
        "provider": make_user("provider", password=None),
        "admin": make_user("admin", password=None),
        "other_clinic_provider": make_user("provider", account=other, password=None),
        "other_clinic_admin": make_user("admin", account=other, password=None),
    }
    tokens = {name: make_token(user) for name, user in users.items()}
    patient, provider = users["patient"], users["provider"]
    visit = make_visit(patient)
    made = {
        "user_document": make_file(patient, SAMPLE["user_document"]),
        "intake_attachment": make_file(provider, SAMPLE["intake_attachment"],
                                       category=Category.INTAKE_ATTACHMENT, visit=visit),
        "user_consent": make_file(patient, SAMPLE["user_consent"], category=Category.USER_CONSENT),
        "user_avatar": make_file(patient, SAMPLE["user_avatar"], category=Category.USER_AVATAR),
    }
    # The matrix is about actions on files the patient can see; hidden ones have their own tests.
    made["intake_attachment"].visible = True  # as if released at upload (version stays 1)
    db.session.commit()
    return World(users, tokens, visit, made)


def upload_fields(world: World, category: str) -> dict:
    if category == "intake_attachment":
        return {"meta.category": category, "meta.target.type": "visit", "meta.target.id": world.visit.public_id}
    return {"meta.category": category, "meta.target.type": "user", "meta.target.id": str(world.users["patient"].id)}


# -- one test per (actor, category) for each endpoint --------------------------------------------

MATRIX = [(actor, category) for actor in ACTORS for category in CATEGORIES]


def check_get(client, world, actor, category):
    row = world.files[category]
    resp = client.get(f"/api_v3/files/{row.public_id}", headers=world.headers(actor))
    assert resp.status_code == expected("view", actor, category), resp.json
    if resp.status_code != 200:
        assert resp.json == {"code": 404, "message": "No such file."}
        assert "fullpath" not in resp.get_data(as_text=True)
        return
    data = resp.json["data"]
    assert data["id"] == row.public_id
    assert data["is_deletable"] is (expected("delete", actor, category) == 200)
    # The link is handed only to someone who may view; it then works without a token.
    view = client.get(data["fullpath"])
    assert view.status_code == 200
    assert view.data == sample(SAMPLE[category])


def check_rename(client, world, actor, category):
    row = world.files[category]
    new_name = "renamed." + row.ext
    resp = client.post(f"/api_v3/files/{row.public_id}", headers=world.headers(actor), data={"name": new_name})
    want = expected("rename", actor, category)
    assert resp.status_code == want, resp.json
    db.session.refresh(row)
    if want == 200:
        assert resp.json["data"]["name"] == new_name and row.name == new_name and row.version == 2
    else:
        assert resp.json["code"] == want and row.name != new_name and row.version == 1


def check_delete(client, world, actor, category):
    row = world.files[category]
    resp = client.delete(f"/api_v3/files/{row.public_id}", headers=world.headers(actor))
    want = expected("delete", actor, category)
    assert resp.status_code == want, resp.json
    db.session.refresh(row)
    if want == 200:
        assert resp.json == {"data": True} and row.deleted_at is not None
    else:
        assert resp.json["code"] == want and row.deleted_at is None


@pytest.mark.parametrize("actor,category", MATRIX)
def test_get_view_rename_delete(client, world, actor, category):
    """Each endpoint for one cell of the matrix (delete last: it changes the state)."""
    check_get(client, world, actor, category)
    check_rename(client, world, actor, category)
    check_delete(client, world, actor, category)


@pytest.mark.parametrize("actor,category", MATRIX)
def test_upload(client, world, actor, category):
    before = db.session.query(StoredFile).count()
    name = SAMPLE[category]
    resp = client.post("/api_v3/files", headers=world.headers(actor),
                       data={"file": (io.BytesIO(sample(name)), name), **upload_fields(world, category)})
    want = expected("upload", actor, category)
    assert resp.status_code == want, resp.json
    if want == 200:
        data = resp.json["data"]
        assert data["meta"]["category"] == category
        assert data["creator"]["id"] == str(world.users[actor].id)
        row = db.session.scalar(select(StoredFile).where(StoredFile.public_id == data["id"]))
        assert row.patient_id == world.users["patient"].id
    else:
        assert resp.json["code"] == want
        # an avatar upload replaces the old one; a refused one must leave everything alone
        assert db.session.query(StoredFile).count() == before


@pytest.mark.parametrize("actor", ACTORS)
def test_list_chart(client, world, actor):
    patient = world.users["patient"]
    resp = client.get(f"/api_v3/files?target_type=user&target_id={patient.id}", headers=world.headers(actor))
    if actor in OUT_OF_SCOPE:
        assert resp.status_code == 404
        return
    assert resp.status_code == 200
    ids = [f["id"] for f in resp.json["data"]]
    user_target = [world.files[c].public_id for c in ("user_avatar", "user_consent", "user_document")]
    assert ids == user_target  # newest first; the intake file sits on the visit


@pytest.mark.parametrize("actor", ACTORS)
def test_list_visit(client, world, actor):
    resp = client.get(f"/api_v3/files?target_type=visit&target_id={world.visit.public_id}",
                      headers=world.headers(actor))
    if actor in OUT_OF_SCOPE:
        assert resp.status_code == 404
        return
    assert resp.status_code == 200
    assert [f["id"] for f in resp.json["data"]] == [world.files["intake_attachment"].public_id]


@pytest.mark.parametrize("actor", ["patient", "other_patient"])
def test_patients_list_their_own_chart_by_default(client, world, actor):
    resp = client.get("/api_v3/files", headers=world.headers(actor))
    assert resp.status_code == 200
    count = 3 if actor == "patient" else 0
    assert len(resp.json["data"]) == count


# -- a clinical record: a document staff added to the patient's chart ----------------------------------

CLINICAL = {"view": {"patient", "provider", "admin"}, "rename": {"provider", "admin"},
            "delete": {"provider", "admin"}}


@pytest.mark.parametrize("actor", ACTORS)
def test_a_clinical_record(client, world, make_file, actor):
    """A document staff added: the patient views it; only staff rename or delete it."""
    record = make_file(world.users["provider"], "notes.txt", patient=world.users["patient"])
    path, headers = f"/api_v3/files/{record.public_id}", world.headers(actor)

    def want(action: str) -> int:
        return 404 if actor in OUT_OF_SCOPE else 200 if actor in CLINICAL[action] else 403

    got = client.get(path, headers=headers)
    assert got.status_code == want("view")
    if got.status_code == 200:
        assert got.json["data"]["is_deletable"] is (want("delete") == 200)
    renamed = client.post(path, headers=headers, data={"name": "renamed.txt"})
    assert renamed.status_code == want("rename") and (renamed.json.get("code") in (None, want("rename")))
    deleted = client.delete(path, headers=headers)
    assert deleted.status_code == want("delete")
    db.session.refresh(record)
    assert (record.name == "renamed.txt") is (want("rename") == 200)
    assert (record.deleted_at is not None) is (want("delete") == 200)


# -- deleted files answer 404 to everyone ------------------------------------------------------------

@pytest.mark.parametrize("actor", ACTORS)
def test_deleted_files_are_gone(client, world, actor):
    row = world.files["user_document"]
    link = client.get(f"/api_v3/files/{row.public_id}", headers=world.headers("admin")).json["data"]["fullpath"]
    files.delete(world.users["admin"], Origin.cli(), row.public_id)
    path = f"/api_v3/files/{row.public_id}"
    headers = world.headers(actor)
    assert client.get(path, headers=headers).status_code == 404
    assert client.post(path, headers=headers, data={"name": "x.txt"}).status_code == 404
    assert client.delete(path, headers=headers).status_code == 404
    assert client.get(link).status_code == 404
    listing = client.get(f"/api_v3/files?target_id={world.users['patient'].id}", headers=headers)
    if actor in OUT_OF_SCOPE:
        assert listing.status_code == 404
    else:
        assert listing.status_code == 200
        assert row.public_id not in [f["id"] for f in listing.json["data"]]
    db.session.refresh(row)
    assert row.name == SAMPLE["user_document"] and row.deleted_by_id == world.users["admin"].id


# -- scope edges -------------------------------------------------------------------------------------

def test_patient_cannot_upload_to_another_patients_visit(client, world, make_visit):
    their_visit = make_visit(world.users["other_patient"])
    resp = client.post("/api_v3/files", headers=world.headers("patient"), data={
        "file": (io.BytesIO(sample("notes.txt")), "notes.txt"), "meta.category": "intake_attachment",
        "meta.target.type": "visit", "meta.target.id": their_visit.public_id})
    assert resp.status_code == 404


def test_other_clinic_cannot_reach_a_visit_by_integer_id(client, world):
    resp = client.get(f"/api_v3/files?target_type=visit&target_id={world.visit.id}",
                      headers=world.headers("other_clinic_admin"))
    assert resp.status_code == 404


def test_documents_belong_to_patients(client, world):
    resp = client.post("/api_v3/files", headers=world.headers("admin"), data={
        "file": (io.BytesIO(sample("notes.txt")), "notes.txt"),
        "meta.target.id": str(world.users["provider"].id)})
    assert resp.status_code == 400


def test_staff_may_set_their_own_avatar(client, world):
    resp = client.post("/api_v3/files", headers=world.headers("provider"), data={
        "file": (io.BytesIO(sample("photo.jpg")), "me.jpg"), "meta.category": "user_avatar"})
    assert resp.status_code == 200
    assert resp.json["data"]["meta"]["target"] == {"id": str(world.users["provider"].id), "type": "user"}


def test_a_new_avatar_replaces_the_old(client, world):
    old = world.files["user_avatar"]
    resp = client.post("/api_v3/files", headers=world.headers("patient"), data={
        "file": (io.BytesIO(sample("scan.png")), "new.png"), "meta.category": "user_avatar"})
    assert resp.status_code == 200
    db.session.refresh(old)
    assert old.deleted_at is not None
    listed = client.get("/api_v3/files?category=user_avatar", headers=world.headers("patient")).json["data"]
    assert [f["id"] for f in listed] == [resp.json["data"]["id"]]


def test_released_files_show_with_include_shared(client, world):
    intake = world.files["intake_attachment"]  # staff's, made visible by the world fixture
    headers = world.headers("patient")
    plain = client.get("/api_v3/files", headers=headers).json["data"]
    assert intake.public_id not in [f["id"] for f in plain]
    shared = client.get("/api_v3/files?include_shared=1", headers=headers).json["data"]
    assert intake.public_id in [f["id"] for f in shared]
    assert next(f for f in shared if f["id"] == intake.public_id)["meta"]["visible"] is True
    none = client.get("/api_v3/files?include_shared=0", headers=headers).json["data"]
    assert intake.public_id not in [f["id"] for f in none]


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PROVIDER, Role.ADMIN])
@pytest.mark.parametrize("category", list(Category))
def test_staff_set_visibility_of_everything_but_profile_pictures(role, category):
    from app.services import access

    switchable = category != Category.USER_AVATAR and role != Role.PATIENT
    actor = type("Actor", (), {"role_enum": role})()
    for action in (Action.SHARE, Action.UNSHARE):
        assert access.allowed(actor, category, action) is switchable
