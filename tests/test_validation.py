"""Validation: every good and hostile sample, through inspect_file and through the VSee upload door."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from conftest import DATA, blobs, sample
from sqlalchemy import func, select

from app.errors import InvalidUpload
from app.extensions import db
from app.models import AuditEvent, StoredFile
from app.services.isolation import IsolationError, run_isolated
from app.services.validation import (
    CSV,
    DOCX,
    JPEG,
    PDF,
    PNG,
    TEXT,
    XLSX,
    Limits,
    clean_name,
    inspect_file,
    name_extension,
)

LIMITS = Limits(image_max_pixels=60_000_000, pdf_timeout=10.0, pdf_memory=512 * 1024 * 1024,
                zip_max_uncompressed=100 * 1024 * 1024)

# name -> (media type, ext, page count, (width, height))
GOOD = {
    "letter.pdf": (PDF, "pdf", 2, None),
    "lab-results.pdf": (PDF, "pdf", 1, None),
    "photo.jpg": (JPEG, "jpg", None, (640, 480)),
    "scan.png": (PNG, "png", None, (800, 1000)),
    "xray.png": (PNG, "png", None, (512, 512)),
    "insurance-front.jpg": (JPEG, "jpg", None, (856, 540)),
    "insurance-back.jpg": (JPEG, "jpg", None, (856, 540)),
    "notes.txt": (TEXT, "txt", None, None),
    "vitals.csv": (CSV, "csv", None, None),
    "referral.docx": (DOCX, "docx", None, None),
    "claims.xlsx": (XLSX, "xlsx", None, None),
}

# (sample file, name it is uploaded under, words the refusal must contain)
HOSTILE = [
    ("encrypted.pdf", "encrypted.pdf", "password"),
    ("truncated.pdf", "truncated.pdf", "damaged or incomplete"),
    ("not-really.pdf", "not-really.pdf", "ends in .pdf but the file is a PNG"),
    ("polyglot.png", "polyglot.png", "extra data after the image"),
    ("polyglot-pdf-in-png.pdf", "polyglot-pdf-in-png.pdf", "ends in .pdf but the file is a PNG"),
    ("polyglot-pdf-in-png.pdf", "polyglot.png", "extra data after the image"),
    ("truncated.jpg", "truncated.jpg", "The image is incomplete (the file ends early)"),
    ("truncated.png", "truncated.png", "The image is incomplete (the file ends early)"),
    ("empty.bin", "empty.pdf", "empty"),
    ("empty.bin", "empty.bin", "empty"),
    ("pixel-bomb.png", "pixel-bomb.png", "20,000x20,000 pixels; the limit is 60,000,000 pixels"),
    ("gif.gif", "gif.gif", "GIF"),
    ("gif.gif", "picture.png", "GIF"),
    ("svg.svg", "svg.svg", "SVG"),
    ("svg.svg", "drawing.txt", "SVG"),
    ("binary-junk.txt", "binary-junk.txt", "binary data"),
    ("latin1.txt", "latin1.txt", "not UTF-8"),
    ("latin1.txt", "latin1.csv", "not UTF-8"),
    ("zip-bomb.docx", "zip-bomb.docx", "expands to more than"),
    ("plain.zip", "plain.zip", "ZIP archives are not accepted"),
    ("plain.zip", "plain.docx", "not a valid Word document"),
    ("macro.html", "macro.html", "Web pages"),
    ("macro.html", "macro.txt", "Web pages"),
    # names that contradict the bytes
    ("letter.pdf", "letter.png", "ends in .png but the file is a PDF"),
    ("letter.pdf", "letter.txt", "ends in .txt but the file is a PDF"),
    ("scan.png", "scan.jpg", "ends in .jpg but the file is a PNG"),
    ("photo.jpg", "photo.png", "ends in .png but the file is a JPEG"),
    ("photo.jpg", "photo.docx", "ends in .docx but the file is a JPEG"),
    ("referral.docx", "referral.xlsx", "not a valid Excel workbook"),
    ("claims.xlsx", "claims.docx", "not a valid Word document"),
    ("referral.docx", "referral.zip", "ends in .zip but the file is a Word document"),
    ("claims.xlsx", "claims.txt", "ends in .txt but the file is an Excel workbook"),
    ("plain.zip", "plain.txt", "ZIP archives are not accepted"),
    ("notes.txt", "notes.exe", "Files of type .exe are not accepted"),
    ("notes.txt", "notes.html", "Files of type .html are not accepted"),
    ("notes.txt", "notes.pdf", "ends in .pdf but the file is a plain-text"),
]

# Hand-made hostile bytes: (id, bytes, name, words the refusal must contain)
CRAFTED = [
    ("junk-before-pdf-header", b"junk\r\n" + sample("letter.pdf"), "letter.pdf", "data before its header"),
    ("pdf-without-body", b"%PDF-1.4\n%%EOF\n", "x.pdf", "PDF"),
    ("pdf-garbage-with-eof", b"%PDF-1.7\n" + b"\x00garbage\xff" * 50 + b"\n%%EOF\n", "x.pdf", "PDF"),
    ("pdf-data-after-eof", sample("letter.pdf") + b"\n" + b"A" * 4096, "letter.pdf", "no end marker"),
    ("jpeg-with-pdf-appended", sample("photo.jpg") + sample("lab-results.pdf"), "photo.jpg", "embedded"),
    ("png-with-script-chunk", None, "scan.png", "embedded"),
    ("jpeg-header-only", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "x.jpg", "JPEG"),
    ("png-signature-only", b"\x89PNG\r\n\x1a\n", "x.png", "PNG"),
    ("tiff", b"II*\x00" + b"\x00" * 100, "scan.tif", "TIFF"),
    ("eps", b"%!PS-Adobe-3.0 EPSF-3.0\n", "x.eps", "PostScript"),
    ("elf-as-txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 50, "notes.txt", "program"),
    ("gzip-as-csv", b"\x1f\x8b\x08\x00" + b"\x00" * 30, "data.csv", "gzip"),
    ("xml-as-txt", b"<?xml version='1.0'?><a/>", "notes.txt", "XML"),
    ("text-with-nul", b"hello\x00world\n", "notes.txt", "binary data"),
    ("utf8-cut-mid-character", "Zoë".encode()[:-1], "notes.txt", "not UTF-8"),
    ("docx-bad-zip", b"PK\x03\x04" + b"\x00" * 100, "x.docx", "damaged"),
    ("bad-zip-without-extension", b"PK\x03\x04" + b"\x00" * 100, "scan from phone", "damaged"),
]


def _png_with_script() -> bytes:
    import zlib

    png = sample("scan.png")
    data = b"Comment\x00<script>alert(1)</script>"
    chunk = len(data).to_bytes(4, "big") + b"tEXt" + data
    chunk += zlib.crc32(b"tEXt" + data).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]  # right after IHDR


def crafted_bytes(case_id: str, data: bytes | None) -> bytes:
    return _png_with_script() if case_id == "png-with-script-chunk" else data


def check(tmp_path: Path, data: bytes, name: str, limits: Limits = LIMITS):
    path = tmp_path / "upload.tmp"
    path.write_bytes(data)
    return inspect_file(str(path), name, limits)


# -- inspect_file --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_samples_are_accepted(name):
    media_type, ext, pages, size = GOOD[name]
    found = inspect_file(str(DATA / name), name, LIMITS)
    assert (found.media_type, found.ext, found.page_count) == (media_type, ext, pages)
    assert (found.width, found.height) == (size or (None, None))


@pytest.mark.parametrize("name", ["letter.pdf", "photo.jpg", "notes.txt", "referral.docx"])
def test_type_comes_from_bytes_when_the_name_has_no_extension(name):
    found = inspect_file(str(DATA / name), "scan from the clinic", LIMITS)
    assert found.media_type == GOOD[name][0]
    assert found.ext == GOOD[name][1]


@pytest.mark.parametrize("name,as_name", [("photo.jpg", "PHOTO.JPEG"), ("letter.pdf", "Letter.PDF"),
                                          ("notes.txt", "notes.md"), ("vitals.csv", "vitals.txt"),
                                          ("notes.txt", "notes.csv")])
def test_equivalent_extensions_are_accepted(name, as_name):
    found = inspect_file(str(DATA / name), as_name, LIMITS)
    assert found.ext == name_extension(as_name)


@pytest.mark.parametrize("name,as_name,words", HOSTILE, ids=[f"{a}-as-{b}" for a, b, _ in HOSTILE])
def test_hostile_samples_are_refused(name, as_name, words):
    with pytest.raises(InvalidUpload) as info:
        inspect_file(str(DATA / name), as_name, LIMITS)
    assert words.lower() in info.value.message.lower()
    assert info.value.status == 400


@pytest.mark.parametrize("case_id,data,name,words", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_inputs_are_refused(tmp_path, case_id, data, name, words):
    with pytest.raises(InvalidUpload) as info:
        check(tmp_path, crafted_bytes(case_id, data), name)
    assert words.lower() in info.value.message.lower()


@pytest.mark.parametrize("text", [b"BMI 24.5, weight 70 kg\n", b"MZ was seen today.\n", b"RIFF notes\n",
                                  b"Rar! said the dog\n", "\ufeffBOM then text\n".encode()])
def test_text_that_merely_starts_like_a_signature_is_text(tmp_path, text):
    """Clinical notes begin with all sorts of letters; only real file headers are refused."""
    assert check(tmp_path, text, "notes.txt").media_type == TEXT


def test_pixel_cap_is_configurable(tmp_path):
    limits = Limits(100_000, LIMITS.pdf_timeout, LIMITS.pdf_memory, LIMITS.zip_max_uncompressed)
    with pytest.raises(InvalidUpload, match=r"800x1,000 pixels; the limit is 100,000 pixels"):
        inspect_file(str(DATA / "scan.png"), "scan.png", limits)


def test_zip_limit_is_configurable():
    limits = Limits(LIMITS.image_max_pixels, LIMITS.pdf_timeout, LIMITS.pdf_memory, 100)
    with pytest.raises(InvalidUpload, match="expands to more than 100 bytes"):
        inspect_file(str(DATA / "referral.docx"), "referral.docx", limits)


def test_docx_lying_about_its_sizes_is_stopped_while_reading(tmp_path):
    """A bomb whose directory claims tiny sizes is still caught by the bounded read."""
    import zipfile

    path = tmp_path / "liar.docx"
    with zipfile.ZipFile(DATA / "referral.docx") as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        out.writestr("word/media/filler.bin", b" " * 2_000_000)
    raw = bytearray(path.read_bytes())
    # Rewrite the declared uncompressed size (central directory and local header) to 10 bytes.
    name = b"word/media/filler.bin"
    for sig, size_at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        pos = raw.find(sig)
        while pos != -1:
            name_len_at = 28 if sig == b"PK\x01\x02" else 26
            name_len = int.from_bytes(raw[pos + name_len_at:pos + name_len_at + 2], "little")
            header = 46 if sig == b"PK\x01\x02" else 30
            if raw[pos + header:pos + header + name_len] == name:
                raw[pos + size_at:pos + size_at + 4] = (10).to_bytes(4, "little")
            pos = raw.find(sig, pos + 4)
    path.write_bytes(bytes(raw))
    limits = Limits(LIMITS.image_max_pixels, LIMITS.pdf_timeout, LIMITS.pdf_memory, 1_000_000)
    with pytest.raises(InvalidUpload):
        inspect_file(str(path), "liar.docx", limits)


# -- display names -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,clean", [
    ("report.pdf", "report.pdf"),
    ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("evil\u202egpj.pdf", "evilgpj.pdf"),
    ("tab\tand\nnewline.pdf", "tabandnewline.pdf"),
    ("  spaced.pdf  ", "spaced.pdf"),
    ("...", ""),
    ("", ""),
    (None, ""),
    ("Zoe\u0308.pdf", "Zo\u00eb.pdf"),  # NFC
    ("\u200b\ufeff", ""),
])
def test_clean_name(raw, clean):
    assert clean_name(raw) == clean


def test_long_names_are_cut_keeping_the_extension():
    name = clean_name("x" * 400 + ".pdf")
    assert len(name) == 255 and name.endswith(".pdf")
    assert len(clean_name("y" * 400)) == 255


# -- isolation of the PDF parser -------------------------------------------------------------------

def _sleep_forever(_path: str, *_args) -> int:
    time.sleep(60)
    return 1


def _allocate(_path: str, *_args) -> int:
    hoard = [bytearray(32 * 1024 * 1024) for _ in range(64)]  # 2 GiB
    return len(hoard)


def _crash(_path: str) -> int:
    os._exit(3)


def _refuse(_path: str) -> int:
    raise InvalidUpload("nope from the child")


def _unpicklable(_path: str) -> int:
    class Local(Exception):
        pass

    raise Local("cannot cross the pipe")


def _pid(_path: str) -> int:
    return os.getpid()


def test_isolated_parser_returns_its_result():
    assert run_isolated(len, "abc", timeout=5, memory=64 * 1024 * 1024) == 3
    assert run_isolated(_pid, "x", timeout=5, memory=64 * 1024 * 1024) != os.getpid()


def test_hanging_parser_is_killed_and_the_worker_survives():
    with pytest.raises(IsolationError, match="too long"):
        run_isolated(_sleep_forever, "x", timeout=0.3, memory=64 * 1024 * 1024)
    assert run_isolated(len, "ok", timeout=5, memory=64 * 1024 * 1024) == 2


def test_greedy_parser_hits_the_memory_budget_and_the_worker_survives():
    with pytest.raises(IsolationError, match="memory"):
        run_isolated(_allocate, "x", timeout=20, memory=128 * 1024 * 1024)
    assert run_isolated(len, "ok", timeout=5, memory=64 * 1024 * 1024) == 2


def test_crashing_parser_is_an_isolation_error():
    with pytest.raises(IsolationError):
        run_isolated(_crash, "x", timeout=5, memory=64 * 1024 * 1024)


def test_child_errors_come_back_to_the_parent():
    with pytest.raises(InvalidUpload, match="nope from the child"):
        run_isolated(_refuse, "x", timeout=5, memory=64 * 1024 * 1024)
    with pytest.raises(IsolationError):
        run_isolated(_unpicklable, "x", timeout=5, memory=64 * 1024 * 1024)


def test_pdf_parse_timeout_becomes_a_clear_refusal(monkeypatch):
    import app.services.decoders as decoders

    monkeypatch.setattr(decoders, "count_pdf_pages", _sleep_forever)
    limits = Limits(LIMITS.image_max_pixels, 0.3, LIMITS.pdf_memory, LIMITS.zip_max_uncompressed)
    with pytest.raises(InvalidUpload, match=r"^The file took too long to check; "):
        inspect_file(str(DATA / "letter.pdf"), "letter.pdf", limits)


def test_pdf_parse_memory_budget_becomes_a_clear_refusal(monkeypatch):
    import app.services.decoders as decoders

    monkeypatch.setattr(decoders, "count_pdf_pages", _allocate)
    limits = Limits(LIMITS.image_max_pixels, 20, 128 * 1024 * 1024, LIMITS.zip_max_uncompressed)
    with pytest.raises(InvalidUpload, match="too much memory"):
        inspect_file(str(DATA / "letter.pdf"), "letter.pdf", limits)


# -- through the VSee upload door -------------------------------------------------------------------

@pytest.fixture
def patient(make_user):
    return make_user("patient")


@pytest.fixture
def upload(client, patient, make_token):
    token = make_token(patient)

    def post(data: bytes, name: str, **fields):
        return client.post("/api_v3/files", headers={"X-ApiToken": token},
                           data={"file": (io.BytesIO(data), name), **fields})

    return post


def assert_nothing_written(app, storage_root):
    assert db.session.scalar(select(func.count()).select_from(StoredFile)) == 0
    # (the token the client signed in with is in the audit trail; nothing about a file is)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.file_id.is_not(None))) == 0
    assert blobs(storage_root) == []
    tmp = Path(app.instance_path) / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


@pytest.mark.parametrize("name", sorted(GOOD))
def test_upload_accepts_good_samples(app, upload, storage_root, name):
    data = sample(name)
    resp = upload(data, name)
    assert resp.status_code == 200, resp.json
    body = resp.json["data"]
    assert (body["name"], body["ext"], body["size"]) == (name, GOOD[name][1], len(data))
    row = db.session.scalar(select(StoredFile))
    assert row.media_type == GOOD[name][0]
    assert [p.read_bytes() for p in blobs(storage_root)] == [data]
    tmp = Path(app.instance_path) / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


@pytest.mark.parametrize("name,as_name,words", HOSTILE, ids=[f"{a}-as-{b}" for a, b, _ in HOSTILE])
def test_upload_refuses_hostile_samples(app, upload, storage_root, name, as_name, words):
    resp = upload(sample(name), as_name)
    assert resp.status_code == 400
    assert resp.json["code"] == 400
    assert words.lower() in resp.json["message"].lower()
    assert_nothing_written(app, storage_root)


@pytest.mark.parametrize("case_id,data,name,words", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_upload_refuses_crafted_inputs(app, upload, storage_root, case_id, data, name, words):
    resp = upload(crafted_bytes(case_id, data), name)
    assert resp.status_code == 400
    assert words.lower() in resp.json["message"].lower()
    assert_nothing_written(app, storage_root)


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 10_000}])
def test_upload_over_the_limit_is_413_with_the_vsee_body(app, upload, storage_root):
    resp = upload(sample("photo.jpg"), "photo.jpg")  # ~40 KB
    assert resp.status_code == 413
    assert resp.json == {"code": 413, "message": "The file is larger than the 10,000-byte limit."}
    assert_nothing_written(app, storage_root)
    # exactly at the limit is fine
    assert upload(b"a" * 10_000, "a.txt").status_code == 200


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 10_000, "MAX_CONTENT_LENGTH": 20_000}])
def test_body_over_the_request_limit_is_413_json_not_html(app, upload, storage_root):
    resp = upload(b"a" * 50_000, "big.txt")
    assert resp.status_code == 413
    assert resp.mimetype == "application/json"
    assert resp.json["code"] == 413 and "10,000-byte limit" in resp.json["message"]
    assert_nothing_written(app, storage_root)


@pytest.mark.parametrize("config_overrides", [{"IMAGE_MAX_PIXELS": 100_000}])
def test_upload_pixel_cap_from_config(app, upload, storage_root):
    resp = upload(sample("scan.png"), "scan.png")
    assert resp.status_code == 400 and "limit is 100,000 pixels" in resp.json["message"]
    assert_nothing_written(app, storage_root)


def test_upload_name_is_cleaned_and_falls_back(app, upload):
    resp = upload(sample("letter.pdf"), "..\\..\\\u202eevil\u0000.pdf")
    assert resp.status_code == 200
    assert resp.json["data"]["name"] == "evil.pdf"
    resp = upload(sample("photo.jpg"), "\u200b")
    assert resp.status_code == 200
    assert resp.json["data"]["name"] == "upload.jpg"
