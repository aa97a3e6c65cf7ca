"""Renditions are bounded: only RENDITION_SIZES are ever stored, every `size=` answer still fits
its box (VSee's promise), rendering from the original runs in a child under a per-process gate,
previews stop at PREVIEW_MAX_PAGES, and the cache is capped and removed with its file."""
from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from builders import scanned_pdf
from conftest import sample
from PIL import Image
from test_storage_contract import s3_bucket, s3_endpoint, storage  # noqa: F401 - fixtures used below

from app.models import Category, Channel
from app.services import files, integrity
from app.services.audit import Origin
from app.storage import new_key
from app.urls import view_url
from app.web import display

SIZES = (128, 320, 640, 1280, 2048)  # RENDITION_SIZES' default


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _get(client, url: str):
    resp = client.get(_path(url) if "://" in url else url)
    resp.get_data()
    resp.close()
    return resp


def photo_bytes(width: int, height: int, fmt: str = "JPEG", orientation: int | None = None) -> bytes:
    """A real photo-like image (noise over a gradient) of the given size."""
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 30)
    im = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    out = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(out, fmt, exif=exif, quality=85)
    else:
        im.save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def upload(owner, data: bytes, name: str):
    return files.upload(owner, Origin(Channel.CLI), io.BytesIO(data), name, Category.USER_DOCUMENT,
                        files.Target.chart(owner))


def stored(root: Path, row) -> dict[str, bytes]:
    """The rendition files kept for one source: name -> bytes."""
    folder = root / "renditions" / row.public_id[:2] / row.public_id
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))} if folder.exists() else {}


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
        return im.size


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[float, float]:
    """The exact (unrounded) size of `size` fitted inside `box`, never enlarged."""
    scale = min(box[0] / size[0], box[1] / size[1], 1.0)
    return size[0] * scale, size[1] * scale


def expected(original: tuple[int, int], box: tuple[int, int]) -> tuple[float, float]:
    """What the answer to `box` measures: the original fitted into the box, and never more than
    the largest stored square."""
    return fit(fit(original, (SIZES[-1], SIZES[-1])), box)


# -- snapping ------------------------------------------------------------------------------------

BOXES = [(1, 1), (7, 300), (300, 7), (64, 64), (100, 100), (128, 128), (129, 129), (150, 100), (200, 150),
         (320, 320), (321, 10), (10, 321), (500, 500), (640, 480), (641, 641), (1000, 1000), (1200, 1600),
         (1280, 1280), (1281, 1281), (2000, 300), (300, 2000), (2048, 2048), (2049, 2049), (2100, 1400),
         (3000, 2000), (3800, 3900), (3999, 4000), (4000, 4000), (4001, 3998), (4096, 4096), (4096, 1),
         (1, 4096), (4095, 4001), (3900, 4096)]


def test_many_sizes_of_one_photo_store_only_the_fixed_set_and_each_answer_fits(client, make_user,
                                                                               storage_root):
    original = (3000, 2000)
    row = upload(make_user(), photo_bytes(*original), "big.jpg")
    for box in BOXES:
        resp = _get(client, view_url(row, size=f"{box[0]}x{box[1]}"))
        assert resp.status_code == 200 and resp.mimetype == "image/png", box
        width, height = png_size(resp.data)
        assert width <= box[0] and height <= box[1], (box, width, height)  # fits the box asked for
        assert width <= min(original[0], 2048) and height <= min(original[1], 2048)  # never enlarged
        want = expected(original, box)
        assert abs(width - want[0]) <= 1.5 and abs(height - want[1]) <= 1.5, (box, (width, height), want)
    kept = stored(storage_root, row)
    assert set(kept) <= {f"{s}x{s}.png" for s in SIZES} and len(kept) <= len(SIZES)
    assert png_size(kept["2048x2048.png"]) == (2048, 1365)  # 4000x4000 was answered from it


def test_an_answer_that_the_stored_rendition_fits_is_the_stored_rendition(client, make_user, storage_root):
    row = upload(make_user(), photo_bytes(3000, 2000), "big.jpg")
    for box, side in (((128, 128), 128), ((2048, 2048), 2048), ((4000, 4000), 2048), ((3000, 2000), 2048),
                      ((1280, 900), 1280)):
        resp = _get(client, view_url(row, size=f"{box[0]}x{box[1]}"))
        assert resp.data == stored(storage_root, row)[f"{side}x{side}.png"], box


def test_an_odd_box_is_answered_from_the_smallest_rendition_that_covers_the_answer(client, make_user,
                                                                                  storage_root):
    """4000x300 of a 3:2 photo is a 450x300 answer: made from the 640 rendition, not the 2048 one."""
    row = upload(make_user(), photo_bytes(3000, 2000), "big.jpg")
    assert png_size(_get(client, view_url(row, size="4000x300")).data) == (450, 300)
    assert png_size(_get(client, view_url(row, size="300x4000")).data) == (300, 200)
    assert set(stored(storage_root, row)) == {"640x640.png"}  # (EXIF may turn it: 640 covers both ways)


def test_a_small_photo_is_never_enlarged(client, make_user, storage_root):
    row = upload(make_user(), photo_bytes(300, 200, "PNG"), "small.png")
    assert png_size(_get(client, view_url(row, size="4000x4000")).data) == (300, 200)
    assert png_size(_get(client, view_url(row, size="2048x2048")).data) == (300, 200)
    assert png_size(_get(client, view_url(row, size="200x200")).data) == (200, 133)
    assert set(stored(storage_root, row)) == {"320x320.png"}  # the original's own size: stored once


def test_a_phone_photo_stands_upright_at_every_size(client, make_user):
    row = upload(make_user(), photo_bytes(600, 400, orientation=6), "phone.jpg")  # rotated 90° by EXIF
    assert png_size(_get(client, view_url(row, size="4000x4000")).data) == (400, 600)
    assert png_size(_get(client, view_url(row, size="100x100")).data) in {(66, 100), (67, 100)}


def test_pdf_previews_snap_the_same_way(client, make_user, make_file, storage_root):
    row = make_file(make_user(), "letter.pdf")
    for size in ("50x50", "100x100", "200x200", "500x300", "1000x1000", "4000x4000", "4096x4096"):
        for page in (1, 2):
            resp = _get(client, view_url(row, size=size, preview=page))
            assert resp.status_code == 200 and resp.mimetype == "image/png"
            width, height = png_size(resp.data)
            box = tuple(int(v) for v in size.split("x"))
            assert width <= box[0] and height <= box[1] and max(width, height) <= 2048
    kept = stored(storage_root, row)
    assert set(kept) <= {f"p{page}-{s}x{s}.png" for s in SIZES for page in (1, 2)}
    assert len(kept) <= 2 * len(SIZES)
    assert max(png_size(_get(client, view_url(row, preview=1)).data)) == 1280  # no size: the viewer's box


def test_the_pages_ask_for_stored_sizes_exactly(make_page_client, make_user, make_file, storage_root):
    """Thumbnails, avatars and the viewer's pages are stored renditions as they are: a page never
    causes a downscale."""
    for box in (display.THUMB_BOX, display.AVATAR_BOX, display.PAGE_BOX):
        width, height = (int(v) for v in box.split("x"))
        assert width == height and width in SIZES, box
    assert f'PAGE_BOX = "{display.PAGE_BOX}"' in (Path(__file__).parents[1] / "static" / "chartbox.js").read_text()
    alice = make_user()
    photo = make_file(alice, "photo.jpg")
    client = make_page_client(alice)
    page = client.get("/documents").get_data(as_text=True)
    [thumb] = re.findall(r'src="([^"]*/files/view/' + photo.public_id + r'[^"]*)"', page)
    thumb = thumb.replace("&amp;", "&")
    resp = _get(client, thumb)
    assert resp.status_code == 200 and resp.data == stored(storage_root, photo)[f"{display.THUMB_BOX}.png"]


def test_a_rendition_answer_is_audited_with_the_size_asked_for(client, make_user, make_file):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditEvent

    row = make_file(make_user(), "photo.jpg")
    _get(client, view_url(row, size="100x100"))
    _get(client, view_url(row, size="3000x3000"))
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all()
    assert [(e.detail or {}).get("size") for e in events] == ["100x100", "3000x3000"]


# -- isolation -----------------------------------------------------------------------------------

def test_rendering_from_the_original_runs_in_a_bounded_child(app, client, make_user, storage_root):
    """In the worker itself the decode would just succeed; in the child, with a deadline far too
    short for it, it is stopped (400, a clear message), nothing is stored and the worker lives on."""
    row = upload(make_user(), photo_bytes(3000, 2000, "PNG"), "big.png")
    app.config["RENDER_TIMEOUT"] = 0.01
    resp = _get(client, view_url(row, size="2048x2048"))
    assert resp.status_code == 400
    assert resp.get_json()["message"] == "No rendition of this image is available (the file took too long to check)."
    assert stored(storage_root, row) == {}
    app.config["RENDER_TIMEOUT"] = 10.0
    assert _get(client, view_url(row, size="2048x2048")).status_code == 200


def test_a_tampered_cache_entry_is_made_again(client, make_user, make_file, storage_root):
    row = make_file(make_user(), "photo.jpg")
    first = _get(client, view_url(row, size="320x320")).data
    path = storage_root / "renditions" / row.public_id[:2] / row.public_id / "320x320.png"
    path.write_bytes(b"not a png at all")
    again = _get(client, view_url(row, size="320x320"))
    assert again.status_code == 200 and again.data == first and path.read_bytes() == first


# -- previews stop at PREVIEW_MAX_PAGES ----------------------------------------------------------

def test_previews_stop_at_preview_max_pages(app, client, make_user, make_file, storage_root):
    app.config["PREVIEW_MAX_PAGES"] = 1
    row = make_file(make_user(), "letter.pdf")  # 2 pages
    assert _get(client, view_url(row, preview=1)).status_code == 200
    late = _get(client, view_url(row, preview=2))
    assert late.status_code == 400
    assert late.get_json() == {"code": 400, "message": "Previews are made of pages 1 to 1 only; "
                               "open the PDF itself to see page 2."}
    missing = _get(client, view_url(row, preview=3))
    assert missing.status_code == 400 and "2 page(s)" in missing.get_json()["message"]
    assert set(stored(storage_root, row)) == {"p1-1280x1280.png"}


# -- the cache is capped and removed with its file -----------------------------------------------

def test_the_cache_is_trimmed_oldest_first_past_its_cap(app, client, make_user, storage_root):
    owner = make_user()
    rows = [upload(owner, photo_bytes(400 + i, 300, "PNG"), f"p{i}.png") for i in range(6)]
    one = len(_get(client, view_url(rows[0], size="320x320")).data)  # ~all the same size
    app.config["RENDITION_CACHE_MAX_BYTES"] = int(one * 3.5)
    for row in rows[1:]:
        assert _get(client, view_url(row, size="320x320")).status_code == 200
        total = sum(p.stat().st_size for p in (storage_root / "renditions").rglob("*.png"))
        assert total <= app.config["RENDITION_CACHE_MAX_BYTES"]
    kept = [bool(stored(storage_root, row)) for row in rows]
    assert kept[-1] and not kept[0] and 2 <= sum(kept) <= 3, kept  # the newest stay, the oldest went
    again = _get(client, view_url(rows[0], size="320x320"))  # an evicted one is simply made again
    assert again.status_code == 200 and again.mimetype == "image/png"


def test_trim_removes_the_oldest_renditions_on_every_backend(app, storage):
    """The cap's arithmetic on the filesystem and on S3: sizes come from one listing, the oldest
    go first, what is kept and the originals stay."""
    from app.services import renditions

    owner = "ab" + uuid.uuid4().hex[2:8] + "-0000-4000-8000-000000000000"
    keys = [f"renditions/ab/{owner}/{n}-128x128.png" for n in range(6)]
    for key in keys:
        storage.put(key, io.BytesIO(b"r" * 1000))
        time.sleep(0.02 if storage.name == "filesystem" else 1.05)  # S3 times are to the second
    original = new_key()
    storage.put(original, io.BytesIO(b"o" * 5000))
    assert renditions.trim(storage, cap=10_000) == 6000  # under the cap: nothing goes
    left = renditions.trim(storage, cap=4000, keep=frozenset({keys[0]}))
    assert left == 3000 and sorted(k for k, _ in storage.entries("renditions/")) == [keys[0], keys[4], keys[5]]
    assert storage.exists(original)
    assert renditions.remove_all(storage, owner) == 3 and list(storage.entries("renditions/")) == []


def test_purge_removes_every_rendition_of_the_file(app, client, runner, make_user, make_file, storage_root):
    owner = make_user()
    photo, pdf, kept = make_file(owner, "photo.jpg"), make_file(owner, "letter.pdf"), make_file(owner, "scan.png")
    for size in ("100x100", "320x320", "4000x4000"):  # three stored sizes: 128, 320 and 2048
        _get(client, view_url(photo, size=size))
        _get(client, view_url(kept, size=size))
        _get(client, view_url(pdf, size=size, preview=2))
    assert len(stored(storage_root, photo)) == 3 and len(stored(storage_root, pdf)) == 3
    for row in (photo, pdf):
        files.delete(owner, Origin.cli(), row.public_id)
    assert integrity.purge(older_than_days=0).purged
    assert stored(storage_root, photo) == {} and stored(storage_root, pdf) == {}
    assert len(stored(storage_root, kept)) == 3


# -- the gate --------------------------------------------------------------------------------------

def test_renders_past_the_gate_get_503_with_retry_after_in_the_vsee_shape(tmp_path):
    """One render slot, a short wait, real threads against a live gunicorn: the excess gets a clear
    503 + Retry-After, never a 500, and the rest succeed."""
    from live import LiveApp

    with LiveApp(tmp_path, {"RENDER_CONCURRENCY": 1, "RENDER_WAIT": 0.01}, workers=1) as live:
        body, content_type = _vsee_upload_body(live, scanned_pdf(12), "pages.pdf")
        status, _, answer = live.request("POST", "/api_v3/files", body,
                                         {"X-ApiToken": live.seed.provider_token, "Content-Type": content_type},
                                         timeout=30)
        assert status == 200, answer[:300]
        link = urlsplit(json.loads(answer)["data"]["fullpath"])
        view = f"{link.path}?{link.query}"
        results: list[tuple[int, dict, bytes]] = []
        start = threading.Barrier(4)

        def attack(pages: range) -> None:
            start.wait()
            for page in pages:
                results.append(live.request("GET", f"{view}&size=2048x2048&preview={page}", timeout=30))

        threads = [threading.Thread(target=attack, args=(range(1 + i, 13, 4),)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    statuses = sorted(status for status, _, _ in results)
    assert len(statuses) == 12 and set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for status, headers, payload in results:
        if status == 503:
            assert headers["retry-after"].isdigit()
            answer = json.loads(payload)
            assert set(answer) == {"code", "message"} and answer["code"] == 503 and answer["message"]


def _vsee_upload_body(live, data: bytes, name: str) -> tuple[bytes, str]:
    from conftest import multipart

    return multipart({"meta.target.type": "user", "meta.target.id": str(live.seed.patient_id)}, name, data)


def test_samples_keep_their_renditions_contract(client, make_user, make_file):
    """The samples every other test uses still answer as VSee promises (PNG, inside the box)."""
    owner = make_user()
    for name in ("photo.jpg", "scan.png", "xray.png", "insurance-front.jpg"):
        row = make_file(owner, name)
        with Image.open(io.BytesIO(sample(name))) as im:
            original = im.size
        for box in ((100, 100), (333, 222), (4096, 4096)):
            resp = _get(client, view_url(row, size=f"{box[0]}x{box[1]}"))
            assert resp.mimetype == "image/png"
            width, height = png_size(resp.data)
            assert width <= box[0] and height <= box[1] and width <= original[0] and height <= original[1]
