"""No stored photo says where it was taken: EXIF GPS, maker notes, XMP, comments and PNG text are
removed losslessly (the pixels are identical) through every door that stores images."""
from __future__ import annotations

import base64
import io
import os
import random
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from app.extensions import db
from app.models import Role, StoredFile
from app.services.scrub import NotScrubbable, _jpeg, strip_metadata
from app.services.validation import JPEG, PNG
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


# -- Large files: streamed, never read whole -------------------------------------------------------

MIB = 1024 * 1024
GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}


def noise(mode: str, size: tuple[int, int]) -> Image.Image:
    """Incompressible pixels, fast to make (effect_noise takes a second per 12 MP)."""
    return Image.frombytes(mode, size, random.Random(7).randbytes(size[0] * size[1] * len(mode)))


def large_jpeg() -> bytes:
    """A 12 MP photo at quality 95 (about 12 MB) carrying GPS, a maker note and a comment."""
    size = (4000, 3000)
    gradient, grain = Image.linear_gradient("L").resize(size), noise("L", size)
    im = Image.merge("RGB", (gradient, grain, Image.blend(gradient, grain, 0.3)))
    exif = Image.Exif()
    exif[0x010F], exif[ORIENTATION], exif[MAKER_NOTE], exif[GPS_IFD] = "PhoneCo", 8, b"serial=ABC123", GPS
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95, exif=exif, comment=b"taken at home")
    return out.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def large_png() -> bytes:
    """A 5.4 MB PNG whose image data is one IDAT chunk (Pillow writes 64 KiB ones), with text
    chunks before and after it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "52.52 N, 13.41 E")
    out = io.BytesIO()
    noise("RGB", (1500, 1200)).save(out, "PNG", pnginfo=info, compress_level=1)
    chunks = png_chunks(out.getvalue())
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    before = [png_chunk(kind, body) for kind, body in chunks if kind not in (b"IDAT", b"IEND")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(before) + png_chunk(b"IDAT", idat) + \
        png_chunk(b"tEXt", b"Comment\x00kitchen") + png_chunk(b"IEND", b"")


def pixels(path) -> bytes:
    with Image.open(path) as im:
        return im.tobytes()


def exif_and_info(path) -> tuple[dict, dict]:
    with Image.open(path) as im:
        return dict(im.getexif()), im.info


def scrub_traced(path) -> tuple[str | None, int]:
    """strip_metadata's result and the peak of Python memory it allocated."""
    tracemalloc.start()
    try:
        out = strip_metadata(str(path), JPEG if str(path).endswith(".jpg") else PNG)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_photo_is_scrubbed_in_bounded_memory(tmp_path):
    original = tmp_path / "big.jpg"
    original.write_bytes(large_jpeg())
    assert original.stat().st_size > 5 * MIB and GPS_IFD in exif_and_info(original)[0]
    out, peak = scrub_traced(original)
    assert peak < 4 * MIB  # a copy buffer and a segment, not the file (was 3x its size)
    assert sorted(os.listdir(tmp_path)) == sorted(["big.jpg", os.path.basename(out)])
    exif, info = exif_and_info(out)
    assert exif == {ORIENTATION: 8} and "comment" not in info
    assert pixels(out) == pixels(original)
    stored = Path(out).read_bytes()
    assert b"PhoneCo" not in stored and b"serial=ABC123" not in stored and b"taken at home" not in stored
    assert strip_metadata(out, JPEG) is None  # nothing left to drop: the orientation block stays as it is


def test_a_large_png_is_scrubbed_in_bounded_memory(tmp_path):
    original = tmp_path / "big.png"
    original.write_bytes(large_png())
    assert max(len(body) for kind, body in png_chunks(original.read_bytes()) if kind == b"IDAT") > 5 * MIB
    out, peak = scrub_traced(original)
    assert peak < 4 * MIB
    stored = Path(out).read_bytes()
    assert [kind for kind, _ in png_chunks(stored)] == [
        kind for kind, _ in png_chunks(original.read_bytes()) if kind != b"tEXt"]
    assert pixels(out) == pixels(original)
    assert b"Location" not in stored and b"kitchen" not in stored
    assert strip_metadata(out, PNG) is None


def test_files_with_nothing_to_drop_get_no_copy(tmp_path):
    from conftest import sample

    for name, data, kind in [("photo.jpg", sample("photo.jpg"), JPEG),
                             ("scrubbed.jpg", _jpeg(tagged_jpeg(orientation=6)), JPEG)]:
        (tmp_path / name).write_bytes(data)
        assert strip_metadata(str(tmp_path / name), kind) is None
    plain = io.BytesIO()
    Image.effect_noise((40, 30), 40).save(plain, "PNG")
    (tmp_path / "plain.png").write_bytes(plain.getvalue())
    assert strip_metadata(str(tmp_path / "plain.png"), PNG) is None
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg", "plain.png", "scrubbed.jpg"]


def test_cut_short_files(tmp_path):
    """Cut inside the scan data, a photo is still scrubbed (its data copied as far as it goes);
    cut inside a marker or a PNG chunk, it does not parse and no copy is left behind."""
    data = tagged_jpeg()
    scan = data.index(b"\xff\xda")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:-500])
    out = strip_metadata(str(cut), JPEG)
    assert out is not None and Path(out).read_bytes() == _jpeg(data)[:-500]
    os.unlink(out)
    exif = data.index(b"\xff\xe1")
    for end in (exif + 1, exif + 3, scan + 3):  # after a fill byte, in a length, in SOS's length
        cut.write_bytes(data[:end])
        with pytest.raises(NotScrubbable):
            strip_metadata(str(cut), JPEG)
    png = tagged_png()
    idat = png.index(b"IDAT")
    for end in (idat + 10, len(png) - 1, 3):
        (tmp_path / "cut.png").write_bytes(png[:end])
        with pytest.raises(NotScrubbable):
            strip_metadata(str(tmp_path / "cut.png"), PNG)
    assert sorted(os.listdir(tmp_path)) == ["cut.jpg", "cut.png"]


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
