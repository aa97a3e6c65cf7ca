"""Every decoder of an upload is isolated and bounded: Pillow, pypdf and zipfile run in forked
children under the "parse" gate, cheap header checks come first in the parent, one budget
(VALIDATION_TIMEOUT) covers a whole upload, and every refusal is a plain sentence.

The hostile files are built small on disk (here and in builders.py): a single-colour PNG of
7700x7700 pixels is about 170 KB but decodes to 178 MB; a PDF of 100,000 blank pages is about 8 MB.
"""
from __future__ import annotations

import base64
import io
import re
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest
from builders import blank_pages_pdf, flat_png, pdf_from_objects, png_chunk
from conftest import DATA, blobs, sample
from sqlalchemy import func, select
from test_faults import (  # noqa: F401 - `world` is a fixture
    Fault,
    World,
    buffered,
    candid,
    candid_attachment_v2,
    candid_image_content,
    claros_upload,
    code_message,
    detail,
    page,
    snapshot,
    tscharts_create_image,
    vsee_upload,
    world,
)

import app.services.decoders as decoders
from app.errors import InvalidUpload, ServerBusy
from app.extensions import db
from app.models import StoredFile
from app.services import isolation
from app.services.validation import PNG, Limits, inspect_file

MIB = 1024 * 1024
LIMITS = Limits(image_max_pixels=60_000_000, pdf_timeout=10.0, pdf_memory=512 * MIB,
                zip_max_uncompressed=100 * MIB)


def limits(**changes) -> Limits:
    from dataclasses import replace

    return replace(LIMITS, **changes)


# -- hostile files, built small (the plain ones in builders.py) ----------------------------------

def page_bomb_pdf(depth: int = 40) -> bytes:
    """A page tree whose every node lists the next one twice: 2**depth pages in a 2 KB file,
    while the root says /Count 1."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    for level in range(depth):
        number = 2 + level
        count = 1 if level == 0 else 2 ** (depth - level)
        objects[number] = b"<< /Type /Pages /Count %d /MediaBox [0 0 612 792] /Kids [%d 0 R %d 0 R] >>" % (
            count, number + 1, number + 1)
    objects[2 + depth] = b"<< /Type /Page /Parent %d 0 R >>" % (1 + depth)
    return pdf_from_objects(objects)


def cyclic_pdf() -> bytes:
    """The page tree's root lists a node that lists the root again."""
    return pdf_from_objects({
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Count 1 /MediaBox [0 0 612 792] /Kids [3 0 R] >>",
        3: b"<< /Type /Pages /Count 1 /Parent 2 0 R /Kids [2 0 R] >>",
    })


@pytest.fixture(scope="session")
def big_png(tmp_path_factory) -> Path:
    """7700x7700 RGB (59.3 megapixels, under the 60,000,000 cap): 178 MB once decoded."""
    path = tmp_path_factory.mktemp("hostile") / "big.png"
    path.write_bytes(flat_png(7700, 7700))
    return path


def check(tmp_path: Path, data: bytes, name: str, lim: Limits = LIMITS):
    path = tmp_path / "upload.tmp"
    path.write_bytes(data)
    return inspect_file(str(path), name, lim)


def refusal(tmp_path: Path, data: bytes, name: str, lim: Limits = LIMITS) -> str:
    with pytest.raises(InvalidUpload) as info:
        check(tmp_path, data, name, lim)
    return info.value.message


# -- the pixel cap, from the header --------------------------------------------------------------

def test_a_small_flat_png_is_accepted(tmp_path):
    found = check(tmp_path, flat_png(300, 200), "flat.png")
    assert (found.media_type, found.width, found.height) == (PNG, 300, 200)


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path):
    message = refusal(tmp_path, flat_png(10_000, 6_001, "L"), "huge.png")
    assert message == ("The image is 10,000x6,001 pixels; the limit is 60,000,000 pixels (about 60 megapixels). "
                       "Save it at a smaller size and upload it again.")


def test_the_pixel_cap_is_checked_before_any_decoder_runs(tmp_path):
    """Only the header is read: a PNG whose data is garbage but whose header is too big is refused
    for its size (a decoder would have said it is damaged)."""
    header = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    message = refusal(tmp_path, header + png_chunk(b"IDAT", b"not zlib at all") + png_chunk(b"IEND", b""), "x.png")
    assert message.startswith("The image is 100,000x100,000 pixels; the limit is 60,000,000 pixels")


def _jpeg_with_frame(width: int, height: int, first: tuple[int, int] | None = None) -> bytes:
    """photo.jpg with its frame header (SOF0) saying width x height; optionally an extra SOF
    with `first` before it (Pillow takes the last frame header before the scan)."""
    data = sample("photo.jpg")
    sof = data.index(b"\xff\xc0")
    patched = data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]
    if first:
        extra = b"\xff\xc1\x00\x11\x08" + struct.pack(">HH", first[1], first[0]) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        patched = patched[:sof] + extra + patched[sof:]
    return patched


def test_a_jpeg_over_the_pixel_cap_is_refused_from_its_header(tmp_path):
    message = refusal(tmp_path, _jpeg_with_frame(12_000, 8_000), "huge.jpg")
    assert message.startswith("The image is 12,000x8,000 pixels; the limit is 60,000,000 pixels (about 60 megapixels).")


def test_a_small_frame_header_before_a_huge_one_does_not_hide_it(tmp_path):
    message = refusal(tmp_path, _jpeg_with_frame(12_000, 8_000, first=(640, 480)), "huge.jpg")
    assert "12,000x8,000 pixels" in message


def test_the_pixel_cap_message_follows_the_setting(tmp_path):
    message = refusal(tmp_path, sample("scan.png"), "scan.png", limits(image_max_pixels=100_000))
    assert message.startswith("The image is 800x1,000 pixels; the limit is 100,000 pixels (about 0.1 megapixels).")


# -- decoding in a child -------------------------------------------------------------------------

def _peak_rss_kib() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_a_big_image_under_the_cap_is_decoded_in_a_child(big_png):
    """The 178 MB decode happens, but not in this process: its peak RSS does not grow by it."""
    if not _reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    before = _peak_rss_kib()
    found = inspect_file(str(big_png), "big.png", LIMITS)
    grown_mib = (_peak_rss_kib() - before) / 1024
    assert (found.width, found.height) == (7700, 7700)
    assert grown_mib < 50, f"the parent's peak RSS grew by {grown_mib:.0f} MiB"


MEMORY_CHECK = """\
import sys
from dataclasses import replace
from app.errors import InvalidUpload
from app.services.validation import inspect_file
import test_decoder_limits as t
try:
    inspect_file(sys.argv[1], "big.png", replace(t.LIMITS, pdf_memory=64 * t.MIB))
except InvalidUpload as exc:
    print(exc.message)
print(inspect_file(sys.argv[2], "scan.png", t.LIMITS).width)
"""


def test_a_decode_needing_more_than_the_memory_budget_is_refused_and_the_parent_survives(big_png):
    """In a fresh worker process: the child's budget is PDF_PARSE_MEMORY on top of the address
    space it inherits, so heap a long-lived parent has freed but kept (this test process, after
    a thousand tests) would loosen it — a bound, but not this exact one."""
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", MEMORY_CHECK, str(big_png), str(DATA / "scan.png")],
                         cwd=here, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "The file needs too much memory to check; save it at a smaller size (or split it into smaller files) "
        "and upload it again.", "800"]


# -- plain words for broken files ------------------------------------------------------------------

RAW = re.compile(
    r"truncated \(|bytes not processed|Error -?\d|Traceback|\b(PIL|pypdf|pdfium|zlib|zipfile)\b|"
    r"Error\b|Exception\b|Warning\b|\bcannot identify\b|\bbroken data stream\b|\bCRC\b|\bchecksum\b|"
    r"\b(OSError|SyntaxError|ValueError|KeyError|TypeError|IndexError|EOFError|struct)\b|"
    r"\b[A-Z][a-z]+[A-Z]\w*\b"  # CamelCase: a class name (PdfReadError, BadZipFile, …)
)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]


def broken_corpus() -> list[tuple[str, bytes, str]]:
    """(id, bytes, upload name): truncated, bit-flipped and inconsistent images, PDFs and Office files."""
    png, jpg, pdf = sample("scan.png"), sample("photo.jpg"), sample("letter.pdf")
    docx = sample("referral.docx")
    cases = []
    for fraction in (0.1, 0.3, 0.6, 0.9, 0.99):
        cases.append((f"png-cut-{fraction}", png[:int(len(png) * fraction)], "scan.png"))
        cases.append((f"jpeg-cut-{fraction}", jpg[:int(len(jpg) * fraction)], "photo.jpg"))
        cases.append((f"pdf-cut-{fraction}", pdf[:int(len(pdf) * fraction)] + b"\n%%EOF\n", "letter.pdf"))
        cases.append((f"docx-cut-{fraction}", docx[:int(len(docx) * fraction)], "referral.docx"))
    idat = png.index(b"IDAT")
    for offset in (10, 200, 5000):
        cases.append((f"png-idat-flip-{offset}", _flip(png, idat + offset), "scan.png"))  # (a JPEG shrugs flips off)
    cases += [
        ("png-ihdr-zero-size", png[:16] + bytes(8) + png[24:], "scan.png"),
        ("png-ihdr-bad-crc", _flip(png, 30), "scan.png"),
        ("png-idat-not-zlib", png[:33] + png_chunk(b"IDAT", b"\x00" * 64) + png_chunk(b"IEND", b""), "scan.png"),
        ("png-no-idat", png[:33] + png_chunk(b"IEND", b""), "scan.png"),
        ("png-signature-only", png[:8], "x.png"),
        ("png-bad-bit-depth", png[:24] + b"\x07" + png[25:], "scan.png"),
        ("jpeg-soi-only", jpg[:2] + b"\xff", "x.jpg"),
        ("jpeg-no-frame-header", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9", "x.jpg"),
        ("jpeg-zero-size-frame", _jpeg_with_frame(0, 0), "photo.jpg"),
        ("pdf-garbage-body", b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "x.pdf"),
        ("pdf-bad-xref", pdf.replace(b"xref", b"xrex"), "letter.pdf"),
        ("pdf-no-root", pdf_from_objects({1: b"<< /Type /Font >>"}), "x.pdf"),
        ("pdf-pages-not-a-dict", pdf_from_objects({1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"42"}), "x.pdf"),
        ("pdf-kids-not-an-array", pdf_from_objects({
            1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Count 1 /Kids 7 >>"}), "x.pdf"),
        ("pdf-no-pages", pdf_from_objects({
            1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Count 0 /Kids [] >>"}), "x.pdf"),
        ("pdf-cyclic-tree", cyclic_pdf(), "x.pdf"),
        ("docx-bad-crc", _office_with_bad_crc(docx), "referral.docx"),
        ("docx-bad-deflate", _office_with_bad_deflate(docx), "referral.docx"),
        ("zip-bad-deflate-unnamed", _office_with_bad_deflate(docx), "from the scanner"),
        ("docx-empty-zip", _empty_zip(), "referral.docx"),
    ]
    return cases


def _office_with_bad_crc(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    raw = bytearray(out.getvalue())
    body = raw.index(b"word/document.xml") + len(b"word/document.xml") + 5
    raw[body] ^= 0x20  # the stored bytes change; the recorded CRC does not
    return bytes(raw)


def _office_with_bad_deflate(data: bytes) -> bytes:
    raw = bytearray(data)
    start = raw.index(b"word/document.xml") + len(b"word/document.xml")
    for i in range(start, start + 40):
        raw[i] = 0xFF  # invalid deflate codes
    return bytes(raw)


def _empty_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w"):
        pass
    return out.getvalue()


CORPUS = broken_corpus()


@pytest.mark.parametrize("case_id,data,name", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_refusal_of_a_broken_file_is_a_plain_sentence(tmp_path, case_id, data, name):
    message = refusal(tmp_path, data, name)
    assert not RAW.search(message), f"{case_id}: {message!r}"
    assert message[0].isupper() and message.endswith("."), message
    assert len(message) < 300


def test_a_truncated_image_says_it_is_incomplete(tmp_path):
    incomplete = "The image is incomplete (the file ends early); save it again and upload it again."
    assert refusal(tmp_path, sample("truncated.jpg"), "truncated.jpg") == incomplete
    assert refusal(tmp_path, sample("truncated.png"), "truncated.png") == incomplete


def test_the_raw_library_message_is_logged_not_sent(tmp_path, caplog):
    caplog.set_level("DEBUG", logger="app.services.decoders")
    refusal(tmp_path, sample("truncated.jpg"), "truncated.jpg")
    assert "truncated" in caplog.text and "bytes not processed" in caplog.text


# -- the page cap ----------------------------------------------------------------------------------

def test_a_pdf_over_the_page_cap_is_refused(tmp_path):
    message = refusal(tmp_path, blank_pages_pdf(11), "long.pdf", limits(pdf_max_pages=10))
    assert message == "The PDF has 11 pages; at most 10 pages can be uploaded. Split it into smaller files and upload those."
    assert check(tmp_path, blank_pages_pdf(10), "ten.pdf", limits(pdf_max_pages=10)).page_count == 10


def test_a_pdf_of_100000_pages_is_refused_without_touching_its_pages(tmp_path):
    """The old check resolved every page (9 s here); the count alone now decides, well within a
    budget that could not have resolved them."""
    message = refusal(tmp_path, blank_pages_pdf(100_000), "huge.pdf", limits(pdf_timeout=5.0, validation_timeout=5.0))
    assert message.startswith("The PDF has 100,000 pages; at most 2,000 pages can be uploaded.")


def test_a_root_count_that_lies_low_does_not_bypass_the_cap(tmp_path):
    message = refusal(tmp_path, blank_pages_pdf(50, count=1), "liar.pdf", limits(pdf_max_pages=10))
    assert message == ("The PDF has more than 10 pages; at most 10 pages can be uploaded. "
                       "Split it into smaller files and upload those.")


def test_a_page_tree_bomb_is_refused_after_counting_just_past_the_cap(tmp_path):
    """2**40 pages reached through shared nodes: the count stops at the cap + 1."""
    message = refusal(tmp_path, page_bomb_pdf(40), "bomb.pdf", limits(pdf_timeout=5.0, validation_timeout=5.0))
    assert message.startswith("The PDF has more than 2,000 pages")


def test_a_cyclic_page_tree_is_damaged(tmp_path):
    message = refusal(tmp_path, cyclic_pdf(), "loop.pdf")
    assert message.startswith("The PDF is damaged")


def test_the_page_count_recorded_is_the_real_one(tmp_path):
    assert check(tmp_path, blank_pages_pdf(3), "three.pdf").page_count == 3
    assert check(tmp_path, blank_pages_pdf(3, count=7), "three.pdf").page_count == 3


# -- one budget for the whole upload ---------------------------------------------------------------

def _hold_the_slot(slots: int, seconds: float) -> threading.Thread:
    """Occupy this process's only parse slot for `seconds`, from another thread."""
    taken = threading.Event()

    def hold():
        with isolation.gate("parse", slots, 0):
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    return thread


def _sleep_then_count(path: str, max_pages: int) -> int:
    time.sleep(0.8)
    return 2


def test_the_validation_budget_cuts_a_child_short(big_png):
    """The decode takes longer than 0.1 s but far less than PDF_PARSE_TIMEOUT: the budget decides."""
    with pytest.raises(InvalidUpload) as info:
        inspect_file(str(big_png), "big.png", limits(validation_timeout=0.1))
    assert info.value.message.startswith("The file took too long to check;")


def test_the_validation_budget_covers_the_wait_for_a_slot():
    """The slot frees after 1.5 s, well within PARSE_WAIT, but past the 0.5 s budget: busy."""
    holder = _hold_the_slot(1, 1.5)
    with pytest.raises(ServerBusy):
        inspect_file(str(DATA / "letter.pdf"), "letter.pdf",
                     limits(parse_concurrency=1, parse_wait=30.0, validation_timeout=0.5))
    holder.join()


def test_the_wait_and_the_child_share_one_budget(monkeypatch):
    """0.6 s of waiting and a 0.8 s check each fit in 1.2 s, both together do not."""
    monkeypatch.setattr(decoders, "count_pdf_pages", _sleep_then_count)
    lim = limits(parse_concurrency=1, parse_wait=30.0, validation_timeout=1.2)
    assert inspect_file(str(DATA / "letter.pdf"), "letter.pdf", lim).page_count == 2  # the control
    holder = _hold_the_slot(1, 0.6)
    with pytest.raises(InvalidUpload) as info:
        inspect_file(str(DATA / "letter.pdf"), "letter.pdf", lim)
    assert info.value.message.startswith("The file took too long to check;")
    holder.join()


# -- the gate, through every door ------------------------------------------------------------------

BUSY = ServerBusy.default_message


def claros_pdf(f: Fault, w: World):
    return claros_upload(f, w)


def page_pdf(f: Fault, w: World, **headers):
    return f.page.post("/documents/upload", headers=headers, data={
        "csrf_token": f.page.csrf("/profile"), "files": (io.BytesIO(sample("letter.pdf")), "letter.pdf")})


def page_pdf_json(f: Fault, w: World):
    return page_pdf(f, w, Accept="application/json")


def candid_charge_capture_pdf(f: Fault, w: World):
    return f.client.post("/api/encounter-attachments/v1/create-from-charge-capture-external-id",
                         headers={"Authorization": f"Bearer {w.token}"}, data={
                             "attachment_file": (io.BytesIO(sample("letter.pdf")), "letter.pdf"),
                             "attachment_type": "OTHER", "charge_capture_external_id": "CC-not-yet"})


def page_busy(resp, message):
    assert resp.mimetype == "text/html" and message in resp.get_data(as_text=True)


DOORS = [
    pytest.param(vsee_upload, code_message, id="vsee"),
    pytest.param(claros_pdf, detail, id="claros"),
    pytest.param(tscharts_create_image, detail, id="tscharts"),
    pytest.param(candid_image_content, candid, id="candid-image-content"),
    pytest.param(candid_attachment_v2, candid, id="candid-attachment-v2"),
    pytest.param(candid_charge_capture_pdf, candid, id="candid-charge-capture"),
    pytest.param(page_pdf, page_busy, id="page"),
    pytest.param(page_pdf_json, code_message, id="page-json"),
]


@pytest.mark.parametrize("config_overrides", [{"PARSE_CONCURRENCY": 1, "PARSE_WAIT": 0.05}])
@pytest.mark.parametrize("call, shape", DOORS)
def test_a_busy_gate_is_503_in_each_doors_shape_and_leaves_nothing(app, client, world, call, shape):
    before = snapshot(app)
    with isolation.gate("parse", 1, 0):  # every slot of this process is taken
        resp = call(Fault("busy", app, client, world.page), world)
    assert resp.status_code == 503, resp.get_data(as_text=True)[:500]
    assert resp.headers["Retry-After"] == str(ServerBusy.retry_after)
    shape(resp, BUSY)
    after = snapshot(app)
    assert after.temp_files == [] and after.blobs == before.blobs and after.rows == before.rows
    # the control: with the slot free, the same upload goes in
    resp = call(Fault("none", app, buffered(app.test_client()), world.page), world)
    assert resp.status_code in (200, 201, 303), resp.get_data(as_text=True)[:500]


@pytest.mark.parametrize("config_overrides", [{"PARSE_CONCURRENCY": 1, "PARSE_WAIT": 0.01}])
def test_concurrent_uploads_past_the_gate_get_503_never_500(app, make_user, make_token, storage_root, big_png):
    """Six real uploads of a PNG that takes a while to decode, at once, with one slot."""
    token = make_token(make_user("patient"))
    data = big_png.read_bytes()
    start = threading.Barrier(6)
    results: list[tuple[int, dict, str | None]] = []

    def upload():
        client = app.test_client()
        start.wait()
        resp = client.post("/api_v3/files", headers={"X-ApiToken": token},
                           data={"file": (io.BytesIO(data), "big.png")})
        results.append((resp.status_code, dict(resp.headers), resp.get_json()))

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(status for status, _, _ in results)
    assert len(statuses) == 6 and set(statuses) <= {200, 503}, results
    assert 200 in statuses and 503 in statuses, statuses
    for status, headers, body in results:
        if status == 503:
            assert headers["Retry-After"] == str(ServerBusy.retry_after)
            assert body == {"code": 503, "message": BUSY}
    accepted = statuses.count(200)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(StoredFile)) == accepted
    assert len(blobs(storage_root)) == accepted
    tmp = Path(app.instance_path) / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_an_office_file_is_checked_in_a_child_under_the_gate():
    """Holding the only slot makes a Word document wait like a PDF or an image: its ZIP is read
    in a child too."""
    with isolation.gate("parse", 1, 0), pytest.raises(ServerBusy):
        inspect_file(str(DATA / "referral.docx"), "referral.docx", limits(parse_concurrency=1, parse_wait=0.01))
    with isolation.gate("parse", 1, 0):  # text needs no child
        assert inspect_file(str(DATA / "notes.txt"), "notes.txt", limits(parse_concurrency=1, parse_wait=0.01))


def test_tscharts_base64_images_are_bounded_too(app, client, world):
    token = world.token
    resp = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {token}"}, json={
        "type": "Xray", "patient": world.patient_id,
        "data": base64.b64encode(flat_png(10_000, 6_001, "L")).decode()})
    assert resp.status_code == 400
    assert resp.get_json()["detail"].startswith("The image is 10,000x6,001 pixels")
