"""HEIC photos, what an iPhone camera writes: sniffed from their `ftyp` brands, validated by
decoding in the bounded child (the pixel cap read from the container first), stored as received
with their Exif and XMP payloads blanked in place, shown everywhere through PNG renditions, and
downloadable as the original or as a JPEG. AVIF, videos and junk behind a HEIC brand are refused;
the vendor doors that document PNG/JPEG (or seven types) keep their own rules."""
from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import random
import re
import struct
import time
import tracemalloc
from pathlib import Path

import pillow_heif
import pytest
from conftest import blobs, count_files, sample
from PIL import Image, ImageChops, ImageStat
from sqlalchemy import select
from test_decoder_limits import LIMITS, check, refusal
from test_renditions import _get as get

from app.errors import InvalidUpload
from app.extensions import db
from app.models import AuditEvent, Category, Channel, Role, StoredFile
from app.services import decoders, files
from app.services.audit import Origin
from app.services.isolation import run_isolated
from app.services.scrub import NotScrubbable, _heif_blanks, strip_metadata
from app.services.validation import HEIC, TEXT, sniff
from app.storage import get_storage
from app.urls import view_url
from app.web import display

MIB = 1024 * 1024
GPS_IFD = 0x8825
SECRETS = (b"PhoneCo", b"Phone 15", b"GPSLatitude", b"52,31")  # what phone-photo.heic's metadata says

def heif(data: bytes) -> Image.Image:
    """Decode a HEIC here, in the test process (the app decodes them only in its children)."""
    pillow_heif.register_heif_opener()
    im = Image.open(io.BytesIO(data), formats=["HEIF"])
    im.load()
    return im


def heic_of(im: Image.Image, **params) -> bytes:
    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    im.save(out, "HEIF", quality=50, **params)
    return out.getvalue()


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def stored_bytes(row: StoredFile) -> bytes:
    with get_storage().open(row.storage_key) as fh:
        return fh.read()


def find(public_id: str) -> StoredFile:
    return db.session.scalar(select(StoredFile).where(StoredFile.public_id == public_id))


# -- sniffing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("brands", [
    (b"heic", b"mif1", b"heic"),  # an iPhone
    (b"mif1", b"heic"),  # major brand generic, the HEVC brand compatible
    (b"heix", b"mif1"),  # 10-bit (Canon, Sony)
    (b"msf1", b"hevc"),  # an image sequence (burst)
    (b"hevx",),
])
def test_heic_is_sniffed_from_its_ftyp_brands(brands):
    assert sniff(ftyp(*brands) + b"\x00" * 64, "") == HEIC
    assert sniff(sample("phone-photo.heic")[:8192], "heic") == HEIC


@pytest.mark.parametrize("head, said", [
    (sample("avif.avif"), "This file is an AVIF image; accepted types are PDF, PNG, JPEG, HEIC,"),
    (ftyp(b"mif1", b"avif", b"miaf"), "This file is an AVIF image;"),  # AVIF lists mif1 as well
    (ftyp(b"avis", b"msf1"), "This file is an AVIF image;"),
    (ftyp(b"isom", b"iso2", b"mp41"), "This file is a video or another kind of media file;"),
    (ftyp(b"qt  ", b"qt  "), "This file is a video or another kind of media file;"),
    (b"\x00\x00\x00\x08ftyp" + b"\x00" * 64, "This file is a video or another kind of media file;"),  # no brands
])
def test_avif_videos_and_other_iso_media_are_refused_by_their_brands(tmp_path, head, said):
    assert refusal(tmp_path, head + b"\x00" * 256, "photo.heic").startswith(said)


def test_a_note_that_mentions_ftyp_is_still_text():
    assert sniff(b"The ftyp box comes first in a HEIC file.\n", "txt") == TEXT


@pytest.mark.parametrize("junk", [
    ftyp(b"heic", b"mif1") + bytes(range(256)) * 8,  # the brand, then nothing a HEIF reader knows
    ftyp(b"heic", b"mif1") + struct.pack(">I", 24) + b"meta" + b"\x00" * 16,  # an empty meta box
    sample("phone-photo.heic")[:28] + random.Random(7).randbytes(2000),  # a real ftyp, then noise
])
def test_junk_behind_a_heic_brand_is_refused_in_plain_words(tmp_path, junk):
    message = refusal(tmp_path, junk, "photo.heic")
    assert "HEIC photo" in message or "incomplete" in message
    assert "libheif" not in message.lower() and "error" not in message.lower()


# -- validation ----------------------------------------------------------------------------------

def test_a_phone_photo_is_validated_as_heic_and_measured_upright(tmp_path):
    found = check(tmp_path, sample("phone-photo.heic"), "IMG_0001.HEIC")
    assert (found.media_type, found.ext, found.width, found.height) == (HEIC, "heic", 480, 640)
    assert check(tmp_path, sample("phone-photo.heic"), "IMG_0001.heif").ext == "heif"
    assert check(tmp_path, sample("phone-photo.heic"), "no extension").ext == "heic"


def test_a_heic_named_like_a_jpeg_is_told_its_real_type(tmp_path):
    assert refusal(tmp_path, sample("phone-photo.heic"), "IMG_0001.jpg") == \
        "The name ends in .jpg but the file is a HEIC photo; rename it to .heic."


def test_a_cut_short_heic_is_incomplete(tmp_path):
    assert refusal(tmp_path, sample("truncated.heic"), "photo.heic") == \
        "The image is incomplete (the file ends early); save it again and upload it again."


@pytest.mark.parametrize("tail", [b"hidden", sample("lab-results.pdf")])
def test_nothing_may_follow_the_last_box(tmp_path, tail):
    message = refusal(tmp_path, sample("phone-photo.heic") + tail, "photo.heic")
    assert message in ("The HEIC photo has extra data after the image; save it again and re-upload.",
                       "The image has another document embedded in it; save it again and re-upload.")


PARENT_CHECK = """\
import sys
from PIL import Image
from app.services import images
from app.services.validation import inspect_file
import test_heic as t
found = inspect_file(sys.argv[1], "IMG_0001.HEIC", t.LIMITS)
png = images.render_isolated(images.image_png, open(sys.argv[1], "rb").read(), 128, timeout=10,
                             memory=512 * t.MIB, what="rendition")
print(found.media_type, found.width, found.height, png[:4] == b"\\x89PNG", "HEIF" in Image.OPEN)
"""


def test_only_the_children_that_decode_a_heic_know_the_format():
    """Validated and rendered, in children: the worker itself never registers libheif with
    Pillow, so no Image.open of the app's could reach it by accident."""
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", PARENT_CHECK, str(here / "data" / "phone-photo.heic")],
                         cwd=here, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["image/heic", "480", "640", "True", "False"]


# -- pixel bombs ---------------------------------------------------------------------------------

def declaring(width: int, height: int) -> bytes:
    """heic-bomb.heic (a real 64x64 HEIC) with every ispe saying width x height instead."""
    data = bytearray(sample("heic-bomb.heic"))
    at = data.find(b"ispe")
    while at != -1:
        data[at + 8:at + 16] = struct.pack(">II", width, height)
        at = data.find(b"ispe", at + 1)
    return bytes(data)


def test_a_heic_bomb_is_refused_from_its_container_before_any_decoder_runs(tmp_path, monkeypatch):
    def no_child(*args):
        raise AssertionError("a decoder ran")

    monkeypatch.setattr(decoders.Budget, "run", no_child)
    started = time.monotonic()
    assert refusal(tmp_path, sample("heic-bomb.heic"), "bomb.heic").startswith(
        "The image is 50,000x50,000 pixels; the limit is 60,000,000 pixels")
    # Under Pillow's own bomb limit, over the app's cap: the app's cap decides, from the header too.
    assert refusal(tmp_path, declaring(9_000, 9_000), "bomb.heic").startswith("The image is 9,000x9,000 pixels;")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("size", [(50_000, 50_000), (9_000, 9_000)])
def test_the_child_refuses_a_heic_bomb_too_in_bounded_time(tmp_path, size):
    """Were the container not read first, the child says the same before libheif decodes a pixel."""
    path = tmp_path / "bomb.heic"
    path.write_bytes(declaring(*size))
    started = time.monotonic()
    with pytest.raises(InvalidUpload) as info:
        run_isolated(decoders.decode_image, str(path), "HEIF", LIMITS.image_max_pixels, timeout=10, memory=512 * MIB)
    assert "pixels; the limit is 60,000,000 pixels" in info.value.message
    assert time.monotonic() - started < 2.0


def test_a_heic_bomb_uploaded_through_vsee_stores_nothing(client, make_user, make_token, storage_root):
    token = make_token(make_user())
    started = time.monotonic()
    resp = client.post("/api_v3/files", headers={"X-ApiToken": token},
                       data={"file": (io.BytesIO(sample("heic-bomb.heic")), "IMG_0002.HEIC")})
    assert time.monotonic() - started < 2.0
    assert resp.status_code == 400 and resp.get_json()["code"] == 400
    assert resp.get_json()["message"].startswith("The image is 50,000x50,000 pixels")
    assert count_files() == 0 and blobs(storage_root) == []


# -- location metadata ---------------------------------------------------------------------------

def assert_blanked_in_place(original: bytes, stored: bytes) -> None:
    """Same length, every byte outside the Exif and XMP payloads as received, none of what they
    said left, and the same picture (upright as before: the container's rotation is kept)."""
    assert len(stored) == len(original) and stored != original
    with io.BytesIO(original) as fh:
        ranges = [(offset, offset + length) for offset, length, _ in _heif_blanks(fh)]
    assert len(ranges) == 2  # phone-photo.heic: one Exif item, one XMP item
    changed = [i for i, (a, b) in enumerate(zip(original, stored, strict=True)) if a != b]
    assert changed and all(any(start <= i < end for start, end in ranges) for i in changed)
    for secret in SECRETS:
        assert secret in original and secret not in stored
    before, after = heif(original), heif(stored)
    assert GPS_IFD in before.getexif() and before.getexif().get_ifd(GPS_IFD)
    assert dict(after.getexif()) == {} and after.getexif().get_ifd(GPS_IFD) == {}
    assert b"GPS" not in after.info["xmp"] and after.info["xmp"].startswith(b"<x:xmpmeta")
    assert after.size == before.size == (480, 640)
    assert after.tobytes() == before.tobytes()


def test_vsee_uploads_keep_the_photo_and_lose_its_location(client, make_user, make_token):
    token = make_token(make_user())
    original = sample("phone-photo.heic")
    resp = client.post("/api_v3/files", headers={"X-ApiToken": token},
                       data={"file": (io.BytesIO(original), "IMG_0001.HEIC")})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data = resp.get_json()["data"]
    assert (data["ext"], data["name"], data["size"]) == ("heic", "IMG_0001.HEIC", len(original))
    row = find(data["id"])
    stored = stored_bytes(row)
    assert (row.media_type, row.width, row.height) == (HEIC, 480, 640)
    assert row.sha256 == hashlib.sha256(stored).hexdigest()
    assert_blanked_in_place(original, stored)
    answer = get(client, data["fullpath"])  # the original: what everyone downloads
    assert answer.status_code == 200 and answer.mimetype == "image/heic" and answer.data == stored


def test_page_uploads_keep_the_photo_and_lose_its_location(make_page_client, make_user):
    patient = make_user()
    client = make_page_client(patient)
    original = sample("phone-photo.heic")
    resp = client.post("/documents/upload", content_type="multipart/form-data", headers={"Accept": "application/json"},
                       data={"csrf_token": client.csrf("/documents"), "category": "user_document",
                             "target_type": "user", "target_id": str(patient.id), "next": "/documents",
                             "files": [(io.BytesIO(original), "IMG_0001.HEIC")]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert_blanked_in_place(original, stored_bytes(find(resp.get_json()["files"][0]["id"])))


def test_a_scrubbed_heic_has_nothing_left_to_blank(tmp_path):
    path = tmp_path / "photo.heic"
    path.write_bytes(sample("phone-photo.heic"))
    cleaned = strip_metadata(str(path), HEIC)
    assert cleaned is not None and strip_metadata(cleaned, HEIC) is None
    plain = tmp_path / "plain.heic"
    plain.write_bytes(heic_of(Image.new("RGB", (64, 48), (10, 120, 200))))  # no Exif, no XMP
    assert strip_metadata(str(plain), HEIC) is None
    assert sorted(os.listdir(tmp_path)) == sorted(["photo.heic", "plain.heic", os.path.basename(cleaned)])


def test_a_large_exif_is_blanked_in_bounded_memory(tmp_path):
    """A 6 MB maker note: blanked in 1 MiB chunks, never held whole."""
    exif = Image.Exif()
    exif[0x010F], exif[0x927C] = "PhoneCo", b"serial=ABC123" + os.urandom(6 * MIB)
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5)}
    path = tmp_path / "big-exif.heic"
    path.write_bytes(heic_of(Image.new("RGB", (64, 48), (10, 120, 200)), exif=exif.tobytes()))
    tracemalloc.start()
    try:
        cleaned = strip_metadata(str(path), HEIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB
    stored = Path(cleaned).read_bytes()
    assert len(stored) == path.stat().st_size and b"serial=ABC123" not in stored and b"PhoneCo" not in stored
    assert heif(stored).getexif().get_ifd(GPS_IFD) == {}


def box(kind: bytes, body: bytes, version: int | None = None) -> bytes:
    body = body if version is None else bytes([version, 0, 0, 0]) + body
    return struct.pack(">I", 8 + len(body)) + kind + body


def other_writers_heif() -> tuple[bytes, bytes]:
    """A container as other writers lay it out (not libheif's versions): infe version 3 (32-bit
    ids), 1 (no item type, an XMP by its content type) and 2, iloc version 2 with extent
    indexes, and Adobe's XMP `uuid` box after mdat. Returns the file and its picture's bytes."""
    exif, xmp, picture = b"\x00\x00\x00\x00MM\x00*GPS secret", b"<x:xmpmeta>GPS secret: 52 N, 13 E</x:xmpmeta>", b"PICTURE" * 9
    infes = (box(b"infe", struct.pack(">IH", 70_000, 0) + b"Exif" + b"\x00", 3)
             + box(b"infe", struct.pack(">HH", 2, 0) + b"xmp\x00application/rdf+xml\x00\x00", 1)
             + box(b"infe", struct.pack(">HH", 3, 0) + b"hvc1" + b"\x00", 2))

    def meta(at: int) -> bytes:
        items = [(70_000, at, len(exif)), (2, at + len(exif), len(xmp)), (3, at + len(exif) + len(xmp), len(picture))]
        iloc = bytes([0x44, 0x04]) + struct.pack(">I", len(items)) + b"".join(
            struct.pack(">IHHHIII", item, 0, 0, 1, 0, offset, length) for item, offset, length in items)
        return box(b"meta", box(b"hdlr", b"\x00" * 4 + b"pict" + b"\x00" * 13, 0) + box(b"iinf", struct.pack(">I", 3) + infes, 1)
                   + box(b"iloc", iloc, 2), 0)

    head = box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
    at = len(head) + len(meta(0)) + 8
    data = head + meta(at) + box(b"mdat", exif + xmp + picture) + box(b"uuid", bytes.fromhex(
        "be7acfcb97a942e89c71999491e3afac") + b"<x:xmpmeta>GPS secret too</x:xmpmeta>")
    return data, picture


def test_other_writers_metadata_layouts_are_blanked_too(tmp_path):
    data, picture = other_writers_heif()
    path = tmp_path / "other.heic"
    path.write_bytes(data)
    with io.BytesIO(data) as fh:
        assert [kind for _, _, kind in _heif_blanks(fh)] == ["exif", "xmp", "xmp"]
    cleaned = Path(strip_metadata(str(path), HEIC)).read_bytes()
    assert len(cleaned) == len(data) and b"secret" not in cleaned and cleaned.count(picture) == 1
    assert cleaned.replace(b" ", b"").count(b'<x:xmpmetaxmlns:x="adobe:ns:meta/"/>') == 2


def _iloc(data: bytes) -> dict[int, int]:
    """Where phone-photo.heic's iloc (version 1, 4-byte fields, one extent per item, its offset
    0) holds each item's base offset: item id -> position of the field."""
    iloc = data.index(b"iloc") + 4
    found, pos = {}, iloc + 8
    for _ in range(struct.unpack(">H", data[iloc + 6:iloc + 8])[0]):
        item_id, _method, _ref, _base, extents = struct.unpack(">HHHIH", data[pos:pos + 12])
        found[item_id] = pos + 6
        pos += 12 + 8 * extents
    return found


EXIF_ITEM, FIRST_TILE = 8, 2  # phone-photo.heic's items (1 is the grid, 2-7 its tiles, 9 the XMP)


@pytest.mark.parametrize("damage", ["outside the file", "over the picture", "cut in the meta box"])
def test_metadata_that_cannot_be_blanked_alone_is_not_scrubbable(tmp_path, damage):
    data = bytearray(sample("phone-photo.heic"))
    at = _iloc(bytes(data))
    if damage == "outside the file":
        data[at[EXIF_ITEM]:at[EXIF_ITEM] + 4] = struct.pack(">I", len(data) + 100)
    elif damage == "over the picture":  # the first tile's bytes
        data[at[EXIF_ITEM]:at[EXIF_ITEM] + 4] = data[at[FIRST_TILE]:at[FIRST_TILE] + 4]
    else:
        data = data[:data.index(b"iinf") + 40]
    path = tmp_path / "bad.heic"
    path.write_bytes(bytes(data))
    with pytest.raises(NotScrubbable):
        strip_metadata(str(path), HEIC)
    assert os.listdir(tmp_path) == ["bad.heic"]  # no copy left behind


def test_an_upload_whose_metadata_cannot_be_blanked_is_refused(client, make_user, make_token, storage_root):
    """libheif reads an Exif item wherever the file puts it; here in a `free` box after mdat,
    which is no data box: blanking there could hit a box, so the upload is refused."""
    data = bytearray(sample("phone-photo.heic"))
    at = _iloc(bytes(data))[EXIF_ITEM]
    offset, = struct.unpack(">I", data[at:at + 4])
    length, = struct.unpack(">I", data[at + 10:at + 14])  # after the extent count and offset
    payload = bytes(data[offset:offset + length])
    data[at:at + 4] = struct.pack(">I", len(data) + 8)
    data += struct.pack(">I", 8 + length) + b"free" + payload
    assert heif(bytes(data)).getexif().get_ifd(GPS_IFD)  # libheif finds the GPS there
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(make_user())},
                       data={"file": (io.BytesIO(bytes(data)), "IMG_0003.HEIC")})
    assert resp.status_code == 400
    assert resp.get_json()["message"] == \
        "The image could not be read to remove its metadata; save it again and re-upload."
    assert count_files() == 0 and blobs(storage_root) == []


# -- renditions and the JPEG download --------------------------------------------------------------

@pytest.fixture
def photo(make_user, make_file):
    return make_file(make_user(), "phone-photo.heic")


def test_size_answers_a_png_that_fits_the_box(client, photo):
    resp = get(client, view_url(photo, size="320x240"))
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    with Image.open(io.BytesIO(resp.data), formats=["PNG"]) as im:
        assert im.size == (180, 240)  # 480x640 (upright) fitted into 320x240
    original = heif(sample("phone-photo.heic")).resize((180, 240))
    with Image.open(io.BytesIO(resp.data)) as im:
        assert ImageStat.Stat(ImageChops.difference(im.convert("RGB"), original)).mean < [8, 8, 8]  # the same picture


def test_format_jpeg_answers_the_whole_photo_as_a_jpeg_and_is_audited(client, photo):
    resp = get(client, view_url(photo) + "&format=jpeg&download=1")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.headers["Content-Disposition"].startswith("attachment") and "phone-photo.jpg" in \
        resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(resp.data), formats=["JPEG"]) as jpeg:
        assert jpeg.size == (480, 640) and "exif" not in jpeg.info
        difference = ImageStat.Stat(ImageChops.difference(jpeg.convert("RGB"), heif(stored_bytes(photo)))).mean
    assert max(difference) < 3  # quality 90 of the same pixels
    for secret in SECRETS:
        assert secret not in resp.data
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all()[-1]
    assert event.file_id == photo.id and event.detail["format"] == "jpeg"


def test_format_is_checked_and_size_still_wins(client, photo, make_file):
    assert get(client, view_url(photo) + "&format=gif").status_code == 400
    assert get(client, view_url(photo) + "&format=gif").get_json()["message"].startswith("format must be jpeg")
    both = get(client, view_url(photo, size="100x100") + "&format=jpeg")
    assert both.mimetype == "image/png"  # VSee's contract: `size` on an image is a PNG
    for name, media_type in [("photo.jpg", "image/jpeg"), ("scan.png", "image/png"), ("letter.pdf", "application/pdf")]:
        row = make_file(photo.creator, name)
        resp = get(client, view_url(row) + "&format=jpeg")
        assert (resp.mimetype, resp.data) == (media_type, sample(name))  # ignored: shown as they are


def test_the_jpeg_is_made_in_a_bounded_child(app, client, photo):
    app.config["RENDER_TIMEOUT"] = 0.001
    resp = get(client, view_url(photo) + "&format=jpeg")
    assert resp.status_code == 400
    assert resp.get_json()["message"] == "No JPEG of this photo is available (the file took too long to check)."


# -- the pages -------------------------------------------------------------------------------------

def test_the_upload_input_accepts_heic_and_iphones_are_told_so():
    accepted = display.UPLOAD_ACCEPT.split(",")
    assert {".heic", ".heif", "image/heic", "image/heif", ".jpg", ".pdf"} <= set(accepted)


def test_the_documents_page_shows_a_heic_through_renditions(make_page_client, make_user, make_file):
    patient = make_user()
    row = make_file(patient, "phone-photo.heic")
    client = make_page_client(patient)
    page = html.unescape(client.get("/documents").get_data(as_text=True))
    assert 'accept="' in page and "image/heic" in page and ".heic" in page
    item = page[page.index(f'data-file-id="{row.public_id}"'):]
    item = item[:item.index("</li>")]
    viewer = re.search(r'class="file-name" href="([^"]+)"[^>]*data-viewer', item)
    thumb = re.search(r'<img class="thumb[^"]*" src="([^"]+)"', item)
    download = re.search(r'data-download="([^"]+)"', item)
    assert viewer and thumb and download
    assert "size=1280x1280" in viewer[1] and "size=128x128" in thumb[1] and "size=" not in download[1]
    for url in (viewer[1], thumb[1]):
        resp = get(client, url)
        assert resp.status_code == 200 and resp.mimetype == "image/png"  # what any browser shows
    resp = get(client, download[1])
    assert resp.mimetype == "image/heic" and resp.data == stored_bytes(row)  # the original


def test_a_profile_picture_stays_png_or_jpeg(make_page_client, make_user):
    patient = make_user()
    client = make_page_client(patient)
    resp = client.post("/documents/upload", content_type="multipart/form-data", headers={"Accept": "application/json"},
                       data={"csrf_token": client.csrf("/documents"), "category": "user_avatar",
                             "target_type": "user", "target_id": str(patient.id), "next": "/profile",
                             "files": [(io.BytesIO(sample("phone-photo.heic")), "me.heic")]})
    assert resp.get_json()["files"][0]["error"] == "A profile picture must be a PNG or JPEG image."


# -- the vendor doors' own rules ---------------------------------------------------------------------

def test_tscharts_images_stay_png_or_jpeg(client, make_user, make_token, storage_root):
    """tscharts clients put `data` in an <img> as it is: a HEIC shows in Safari only."""
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    resp = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {make_token(provider)}"},
                       json={"type": "Headshot", "patient": patient.id,
                             "data": base64.b64encode(sample("phone-photo.heic")).decode()})
    assert resp.status_code == 400
    assert count_files() == 0 and blobs(storage_root) == []


def test_candid_attachments_stay_the_seven_documented_types(client, make_user, make_token, make_visit, storage_root):
    """/work/shared/seeds/candid-encounter-attachments-*.txt: exactly seven MIME types, no HEIC."""
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    resp = client.put(f"/api/encounter-attachments/v1/{make_visit(patient).public_id}/v2",
                      headers={"Authorization": f"Bearer {make_token(provider)}"},
                      data={"attachment_file": (io.BytesIO(sample("phone-photo.heic")), "IMG_0001.HEIC"),
                            "attachment_type": "OTHER"})
    assert resp.status_code == 400 and resp.get_json()["errorName"] == "BadRequestError"
    assert count_files() == 0 and blobs(storage_root) == []


def test_claros_stays_pdf_only(client, make_user, make_token):
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    resp = client.post(f"/patients/{patient.id}/pdf", headers={"X-API-Key": make_token(provider)},
                       data={"file": (io.BytesIO(sample("phone-photo.heic")), "IMG_0001.HEIC"),
                             "filename": "IMG_0001.HEIC"})
    assert resp.status_code == 400 and count_files() == 0


def test_candid_pre_encounter_images_take_a_heic_card_photo(client, make_user, make_token):
    """Their file_type is a free string (the vendor's docs name no types): a HEIC card photo is
    stored like any upload, without its location."""
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    auth = {"Authorization": f"Bearer {make_token(provider)}"}
    image = client.post("/images/v1", headers=auth, json={
        "file_name": "card.heic", "display_name": "Card", "file_type": "image/heic", "status": "PENDING",
        "patient": {"id": str(patient.id)}}).get_json()
    original = sample("phone-photo.heic")
    assert client.put(image["signed_url"], data=original, content_type="image/heic").status_code == 200
    row = db.session.scalar(select(StoredFile).order_by(StoredFile.id.desc()))
    assert row.media_type == HEIC
    assert_blanked_in_place(original, stored_bytes(row))


def test_the_file_service_takes_a_heic_from_any_door(app, make_user):
    """The CLI's door, like the others: the hall validates and scrubs the same way."""
    owner = make_user()
    row = files.upload(owner, Origin(Channel.CLI), io.BytesIO(sample("phone-photo.heic")), "IMG_0001.HEIC",
                       Category.USER_DOCUMENT, files.Target.chart(owner))
    assert row.media_type == HEIC and row.ext == "heic"
    assert_blanked_in_place(sample("phone-photo.heic"), stored_bytes(row))


def test_the_page_offers_a_heic_as_the_original_and_as_a_jpeg(make_page_client, make_user, make_file):
    alice = make_user()
    make_file(alice, "phone-photo.heic")
    make_file(alice, "photo.jpg")
    client = make_page_client(alice)
    page = client.get("/documents").get_data(as_text=True)
    links = re.findall(r'href="([^"]+)" aria-label="Download ([^"]+) as JPEG"', page)
    assert [name for _, name in links] == ["phone-photo.heic"]  # a JPEG needs no JPEG copy
    resp = client.get(html.unescape(links[0][0]).replace("http://chartbox.test", ""))
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert resp.headers["Content-Disposition"].startswith("attachment")
