"""Storage quotas: what one patient keeps (USER_QUOTA_BYTES) and what a clinic keeps
(CLINIC_QUOTA_BYTES), checked under the clinic's lock so concurrent uploads cannot overshoot;
files in the trash count until they are purged."""
from __future__ import annotations

import io
import threading

import pytest
from conftest import blobs, sample
from sqlalchemy import func, select
from test_services_postgres import pg_migrated, pg_schema  # noqa: F401 — reused for the PostgreSQL test

from app.errors import TooLarge
from app.extensions import db
from app.models import Category, Channel, Role, StoredFile
from app.services import files
from app.services.audit import Origin
from app.services.uploads import human_bytes

NOTE = b"a note of exactly forty bytes, for sums\n"
assert len(NOTE) == 40


def upload(actor, patient=None, data: bytes = NOTE, name: str = "note.txt"):
    return files.upload(actor, Origin(Channel.CLI), io.BytesIO(data), name, Category.USER_DOCUMENT,
                        files.Target.chart(patient or actor))


def kept() -> int:
    return db.session.scalar(select(func.coalesce(func.sum(StoredFile.size), 0)))


def race_uploads(app, token: str, data: bytes, threads: int = 8) -> list[int]:
    """`threads` real threads post `data` through the API at once (lined up at a barrier), each
    with its own session: their statuses."""
    statuses: list[int] = []
    barrier = threading.Barrier(threads)

    def post():
        with app.app_context():
            barrier.wait(10)
            resp = app.test_client().post("/api_v3/files", headers={"X-ApiToken": token},
                                          data={"file": (io.BytesIO(data), "letter.pdf")})
            statuses.append(resp.status_code)
            db.session.remove()

    started = [threading.Thread(target=post) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    return statuses


@pytest.fixture
def config_overrides():
    return {"USER_QUOTA_BYTES": 100, "CLINIC_QUOTA_BYTES": None}


def test_a_patient_past_their_quota_gets_a_clear_413_and_nothing_is_kept(app, make_user, storage_root):
    patient = make_user()
    upload(patient)
    upload(patient)
    with pytest.raises(TooLarge) as info:
        upload(patient)
    assert info.value.status == 413
    assert "past your 100 bytes storage quota" in info.value.message and "ask the clinic" in info.value.message
    assert kept() == 80 and len(blobs(storage_root)) == 2  # the refused file's bytes are gone too
    assert upload(patient, data=b"small\n").size == 6  # what still fits goes in


def test_the_quota_is_per_patient_and_staff_uploads_do_not_count(app, make_user):
    alice, bob, provider = make_user(), make_user(), make_user(Role.PROVIDER)
    upload(alice)
    upload(alice)
    upload(bob)  # bob has his own quota
    upload(provider, alice)  # staff uploads into alice's chart count for the clinic only
    with pytest.raises(TooLarge):
        upload(alice)


def test_deleted_files_count_until_they_are_purged(app, make_user, runner):
    patient = make_user()
    first = upload(patient)
    upload(patient)
    files.delete(patient, Origin(Channel.CLI), first.public_id)
    with pytest.raises(TooLarge) as info:
        upload(patient)
    assert "deleted files count until they are removed for good" in info.value.message
    result = runner.invoke(args=["files", "purge", "--older-than", "0", "--yes"])
    assert result.exit_code == 0, result.output
    assert upload(patient).size == 40


@pytest.mark.parametrize("config_overrides", [{"USER_QUOTA_BYTES": None, "CLINIC_QUOTA_BYTES": 100}])
def test_a_clinic_past_its_quota(app, make_user, make_account, config_overrides):
    alice, bob, provider = make_user(), make_user(), make_user(Role.PROVIDER)
    elsewhere = make_user(account=make_account("other"))
    upload(alice)
    upload(provider, bob)
    with pytest.raises(TooLarge) as info:
        upload(bob)
    assert "past its 100 bytes storage quota" in info.value.message and "administrator" in info.value.message
    upload(elsewhere)
    upload(elsewhere)  # another clinic has its own quota


@pytest.mark.parametrize("config_overrides", [{"USER_QUOTA_BYTES": None, "CLINIC_QUOTA_BYTES": None}])
def test_none_turns_the_quotas_off(app, make_user, config_overrides):
    patient = make_user()
    for _ in range(5):
        upload(patient)
    assert kept() == 200


def test_a_full_quota_refuses_before_the_body_is_read(app, make_user, storage_root):
    patient = make_user()
    upload(patient, data=NOTE * 2 + b"x" * 20)  # exactly 100 bytes: full

    class Unread(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body was read")

    with pytest.raises(TooLarge):
        files.upload(patient, Origin(Channel.CLI), Unread(), "x.txt", Category.USER_DOCUMENT,
                     files.Target.chart(patient))


def test_a_page_upload_past_the_quota_names_it_per_file(make_page_client, make_user, storage_root):
    patient = make_user()
    client = make_page_client(patient)
    data = {"csrf_token": client.csrf("/documents"), "category": "user_document", "target_type": "user",
            "target_id": "", "files": [(io.BytesIO(NOTE), f"n{n}.txt") for n in range(3)]}
    resp = client.post("/documents/upload", data=data, headers={"Accept": "application/json"},
                       content_type="multipart/form-data")
    results = resp.get_json()["files"]
    assert resp.status_code == 201 and [r["ok"] for r in results] == [True, True, False]
    assert "storage quota" in results[2]["error"]
    assert kept() == 80 and len(blobs(storage_root)) == 2


@pytest.mark.parametrize("config_overrides", [{"USER_QUOTA_BYTES": 10 * len(sample("letter.pdf")) // 2,
                                               "CLINIC_QUOTA_BYTES": None}])
def test_concurrent_uploads_cannot_overshoot(app, client, make_user, make_token, storage_root, config_overrides):
    """8 real threads upload at once through the API; only what fits goes in (5 of 8)."""
    patient = make_user(password=None)
    pdf = sample("letter.pdf")
    statuses = race_uploads(app, make_token(patient), pdf)
    assert sorted(statuses) == [200] * 5 + [413] * 3
    assert kept() == 5 * len(pdf) <= config_overrides["USER_QUOTA_BYTES"]
    assert len(blobs(storage_root)) == 5  # the refused uploads left no bytes


@pytest.mark.parametrize("n, text", [(2 * 1024**3, "2 GB"), (1536 * 1024**2, "1.5 GB"), (500 * 1024**2, "500 MB"),
                                     (100, "100 bytes")])
def test_quota_sizes_read_like_a_disk(n, text):
    assert human_bytes(n) == text


@pytest.mark.postgres
def test_concurrent_uploads_cannot_overshoot_on_postgresql(pg_migrated, tmp_path):
    """The same race on PostgreSQL, where the clinic's row lock (not a database-wide write
    lock) is what serializes the check."""
    from test_services_postgres import empty_tables, pg_config

    from app import create_app
    from app.services import accounts

    pdf = sample("letter.pdf")
    app = create_app({**pg_config(tmp_path, pg_migrated["schema"]), "USER_QUOTA_BYTES": 5 * len(pdf)},
                     instance_path=str(tmp_path / "pg"))
    with app.app_context():
        try:
            patient = accounts.create_user(accounts.create_account("pgq", "PGQ"), Role.PATIENT, "pgq.pat", "Pat")
            statuses = race_uploads(app, accounts.create_token(patient)[1], pdf)
            assert sorted(statuses) == [200] * 5 + [413] * 3
            assert kept() == 5 * len(pdf)
        finally:
            empty_tables()
