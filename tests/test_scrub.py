"""No stored photo says where it was taken: EXIF GPS, maker notes, XMP, comments and PNG text are
removed losslessly (the pixels are identical) through every door that stores images."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from app.extensions import db
from app.models import Role, StoredFile
from app.storage import get_storage

GPS_IFD, MAKER_NOTE, ORIENTATION = 0x8825, 0x927C, 0x0112


def tagged_jpeg(orientation: int = 6) -> bytes:
    """A real JPEG carrying what a phone writes: GPS, make/model, a maker note, XMP, a comment."""
    im = Image.effect_noise((64, 48), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[ORIENTATION] = "PhoneCo", "Phone 15", orientation
    exif[MAKER_NOTE] = b"serial=ABC123"
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif, comment=b"taken at home", quality=90,
            xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="52,31"/></x:xmpmeta>')
    return out.getvalue()


def tagged_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "52.52 N, 13.41 E")
    info.add_text("Comment", "kitchen", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>")
    out = io.BytesIO()
    Image.effect_noise((40, 30), 40).convert("RGB").save(out, "PNG", pnginfo=info)
    return out.getvalue()


def stored_bytes(file_id) -> tuple[StoredFile, bytes]:
    row = db.session.get(StoredFile, file_id) if isinstance(file_id, int) else db.session.scalar(
        select(StoredFile).where(StoredFile.public_id == file_id))
    with get_storage().open(row.storage_key) as fh:
        return row, fh.read()


def assert_clean_and_identical(original: bytes, stored: bytes, row: StoredFile) -> None:
    import hashlib

    assert stored != original and row.sha256 == hashlib.sha256(stored).hexdigest() and row.size == len(stored)
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(stored))
    assert before.tobytes() == after.tobytes()  # the very same pixels
    exif = after.getexif()
    assert GPS_IFD not in exif and MAKER_NOTE not in exif and 0x010F not in exif
    for key in ("comment", "xmp", "Location", "Comment", "XML:com.adobe.xmp", "exif"):
        assert key not in after.info or (key == "exif" and set(after.getexif()) <= {ORIENTATION})
    for secret in (b"PhoneCo", b"serial=ABC123", b"taken at home", b"52,31", b"Location", b"kitchen", b"xmpmeta"):
        assert secret not in stored


def test_the_scrubber_keeps_the_orientation():
    from app.services.scrub import _jpeg

    cleaned = Image.open(io.BytesIO(_jpeg(tagged_jpeg(orientation=6))))
    assert dict(cleaned.getexif()) == {ORIENTATION: 6}
    upright = Image.open(io.BytesIO(_jpeg(tagged_jpeg(orientation=1))))
    assert dict(upright.getexif()) == {}


@pytest.fixture
def people(make_user, make_token):
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    return patient, provider, make_token(patient), make_token(provider)


@pytest.mark.parametrize("make, name", [(tagged_jpeg, "phone.jpg"), (tagged_png, "screen.png")])
def test_vsee_uploads_are_scrubbed(client, people, make, name):
    token = people[2]
    original = make()
    resp = client.post("/api_v3/files", headers={"X-ApiToken": token},
                       data={"file": (io.BytesIO(original), name)})
    assert resp.status_code == 200
    row, stored = stored_bytes(resp.json["data"]["id"])
    assert_clean_and_identical(original, stored, row)
    assert resp.json["data"]["size"] == len(stored)
    assert client.get(resp.json["data"]["fullpath"]).data == stored  # what everyone gets back


def test_page_uploads_are_scrubbed(make_page_client, people):
    patient = people[0]
    client = make_page_client(patient)
    original = tagged_jpeg()
    resp = client.post("/documents/upload", content_type="multipart/form-data", headers={"Accept": "application/json"},
                       data={"csrf_token": client.csrf("/documents"), "category": "user_document",
                             "target_type": "user", "target_id": str(patient.id), "next": "/documents",
                             "files": [(io.BytesIO(original), "phone.jpg")]})
    assert resp.status_code == 201
    assert_clean_and_identical(original, *reversed(stored_bytes(resp.json["files"][0]["id"])))


def test_tscharts_images_are_scrubbed(client, people):
    patient, _, _, provider_token = people
    original = tagged_jpeg()
    resp = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {provider_token}"},
                       json={"type": "Headshot", "patient": patient.id, "data": base64.b64encode(original).decode()})
    row, stored = stored_bytes(resp.get_json()["id"])
    assert_clean_and_identical(original, stored, row)


def test_candid_signed_put_and_attachments_are_scrubbed(client, people, make_visit):
    patient, _, _, provider_token = people
    auth = {"Authorization": f"Bearer {provider_token}"}
    image = client.post("/images/v1", headers=auth, json={
        "file_name": "card.jpg", "display_name": "Card", "file_type": "image/jpeg", "status": "PENDING",
        "patient": {"id": str(patient.id)}}).get_json()
    original = tagged_jpeg()
    assert client.put(image["signed_url"], data=original, content_type="image/jpeg").status_code == 200
    got = client.get(f"/images/v1/{image['id']}", headers=auth).get_json()
    assert_clean_and_identical(original, client.get(got["signed_url"]).data,
                               db.session.scalar(select(StoredFile).order_by(StoredFile.id.desc())))
    visit = make_visit(patient)
    attachment = client.put(f"/api/encounter-attachments/v1/{visit.public_id}/v2", headers=auth,
                            data={"attachment_file": (io.BytesIO(tagged_png()), "s.png"),
                                  "attachment_type": "OTHER"}).get_json()
    stored = stored_bytes(attachment)[1]
    assert b"kitchen" not in stored and b"Location" not in stored


def test_files_without_metadata_are_stored_as_received(client, people):
    from conftest import sample

    resp = client.post("/api_v3/files", headers={"X-ApiToken": people[2]},
                       data={"file": (io.BytesIO(sample("photo.jpg")), "photo.jpg")})
    assert stored_bytes(resp.json["data"]["id"])[1] == sample("photo.jpg")
