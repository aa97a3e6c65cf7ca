"""Integrity on read: a stored blob whose bytes no longer match its sha256 is never served as the file.

Small files (up to VERIFY_BEFORE_SEND_BYTES) are checked before the first byte is sent and
answer a clear 503; larger ones are checked as they stream and the transfer is cut short.
Each mismatch is logged and audited (a VIEW event with detail {"integrity": "mismatch"}).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import sample
from sqlalchemy import select
from werkzeug.wsgi import FileWrapper

from app.extensions import db
from app.models import AuditEvent, Channel, StoredFile
from app.services import files
from app.services.audit import Origin
from app.services.viewing import DamagedFile, VerifiedStream
from app.urls import view_url

LIMIT = 20_000  # VERIFY_BEFORE_SEND_BYTES here: the samples are below it, BIG far above
BIG = ("".join(f"{i:08d},reading,{i * 7 % 1000:03d}\n" for i in range(40_000))).encode()  # 840 KB of text


@pytest.fixture
def config_overrides() -> dict:
    return {"VERIFY_BEFORE_SEND_BYTES": LIMIT}


@pytest.fixture
def patient(make_user):
    return make_user("patient")


@pytest.fixture
def small(patient, make_file) -> StoredFile:
    row = make_file(patient, "photo.jpg")
    assert row.size <= LIMIT
    return row


@pytest.fixture
def large(patient) -> StoredFile:
    row = files.upload(patient, Origin(Channel.CLI), io.BytesIO(BIG), "readings.csv")
    assert row.size == len(BIG) > 10 * 64 * 1024  # many chunks, far above the limit
    return row


def blob(app, row: StoredFile) -> Path:
    return Path(app.config["STORAGE_ROOT"]) / row.storage_key


def flip_a_byte(app, row: StoredFile, at: int) -> None:
    path = blob(app, row)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def stopped_by_damage(resp) -> None:
    """Read a streamed answer to its end: DamagedFile stops it on the way (it is closed after)."""
    try:
        with pytest.raises(DamagedFile):
            for _ in resp.response:
                pass
    finally:
        resp.close()


def path_of(row: StoredFile, **extra) -> str:
    url = urlsplit(view_url(row, **extra))
    return f"{url.path}?{url.query}"


def mismatch_events(row: StoredFile) -> list[AuditEvent]:
    db.session.expire_all()
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.file_id == row.id,
                                                         AuditEvent.action == "view")).all()
    return [e for e in events if (e.detail or {}).get("integrity") == "mismatch"]


def view_events(row: StoredFile) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.file_id == row.id,
                                                            AuditEvent.action == "view")))


@contextlib.contextmanager
def serving(app) -> Iterator[tuple[str, int]]:
    """The app on a real threaded werkzeug server on a free loopback port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


# -- untouched files pass, with their ETag and Range ----------------------------------------------

@pytest.mark.parametrize("which", ["small", "large"])
def test_untouched_files_pass_with_etag_and_range(client, request, which):
    row: StoredFile = request.getfixturevalue(which)
    data = sample("photo.jpg") if which == "small" else BIG
    resp = client.get(path_of(row))
    assert resp.status_code == 200 and resp.data == data
    assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"' == f'"{row.sha256}"'
    assert resp.content_length == len(data)
    ranged = client.get(path_of(row), headers={"Range": "bytes=100-4099"})
    assert ranged.status_code == 206 and ranged.data == data[100:4100]
    assert ranged.headers["Content-Range"] == f"bytes 100-4099/{len(data)}"
    tail = client.get(path_of(row), headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    assert client.get(path_of(row), headers={"If-None-Match": f'"{row.sha256}"'}).status_code == 304
    streamed = client.get(path_of(row), buffered=False)
    try:
        assert b"".join(streamed.response) == data
    finally:
        streamed.close()
    assert mismatch_events(row) == []


def test_verified_stream_checks_only_a_whole_sequential_read():
    data = b"0123456789" * 1000
    digest = hashlib.sha256(data).hexdigest()
    reports: list[str] = []
    whole = VerifiedStream(io.BytesIO(data + b"extra past the row's size"), len(data), digest, reports.append)
    assert b"".join(iter(lambda: whole.read(777), b"")) == data  # never past the row's size
    seeked = VerifiedStream(io.BytesIO(b"X" + data[1:]), len(data), digest, reports.append)
    seeked.seek(5)
    assert seeked.read() == data[5:]  # a range: cannot be checked, so it is not
    damaged = VerifiedStream(io.BytesIO(b"X" + data[1:]), len(data), digest, reports.append)
    with pytest.raises(DamagedFile):
        damaged.read()  # the whole file in one read: raised instead of returned
    with pytest.raises(DamagedFile):
        damaged.read(1)  # and on every read after
    short = VerifiedStream(io.BytesIO(data[:-1]), len(data), digest, reports.append)
    assert len(short.read(len(data) - 1)) == len(data) - 1
    with pytest.raises(DamagedFile):
        short.read(10)  # the blob ended early
    assert reports == ["sha256 mismatch after 10000 bytes", "the blob ended after 9999 of 10000 bytes"]
    for stream in (whole, seeked, damaged, short):
        stream.close()


# -- small files: checked before the first byte, a clear error -----------------------------------

@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=0-99"}], ids=["whole", "range"])
def test_damaged_small_file_answers_a_clear_error(app, client, small, caplog, headers):
    flip_a_byte(app, small, small.size // 2)
    resp = client.get(path_of(small), headers=headers)
    assert resp.status_code == 503
    assert resp.json == {"code": 503, "message": "The stored copy of this file is damaged; an administrator has been told."}
    [event] = mismatch_events(small)
    assert event.detail["integrity"] == "mismatch" and event.channel == "link"
    assert view_events(small) == [event]  # no ordinary view was recorded: nothing was sent
    assert f"file {small.public_id} (photo.jpg) is damaged" in caplog.text


def test_a_small_file_of_the_wrong_size_answers_the_clear_error(app, client, small):
    with open(blob(app, small), "ab") as fh:
        fh.write(b"junk")
    assert client.get(path_of(small)).status_code == 503
    assert len(mismatch_events(small)) == 1


def test_a_rendition_is_never_made_from_damaged_bytes(app, client, small):
    flip_a_byte(app, small, small.size // 2)
    resp = client.get(path_of(small, size="50x50"))
    assert resp.status_code == 503 and resp.json["code"] == 503
    assert not list((Path(app.config["STORAGE_ROOT"]) / "renditions").rglob("*.png"))
    assert len(mismatch_events(small)) == 1


def test_a_rendition_of_a_sound_file_is_made_and_cached(app, client, small):
    assert client.get(path_of(small, size="50x50")).status_code == 200
    assert len(list((Path(app.config["STORAGE_ROOT"]) / "renditions").rglob("*.png"))) == 1


# -- large files: checked as they stream, the transfer is cut ------------------------------------

@pytest.mark.parametrize("at", [0, len(BIG) // 2, len(BIG) - 1], ids=["first-byte", "middle", "last-byte"])
def test_damaged_large_file_is_cut_short(app, client, large, caplog, at):
    flip_a_byte(app, large, at)
    resp = client.get(path_of(large), buffered=False)
    received = 0
    try:
        # The headers went out before the damage could show: the body is where it is stopped.
        assert resp.status_code == 200 and resp.content_length == len(BIG)
        with pytest.raises(DamagedFile):
            for chunk in resp.response:
                received += len(chunk)
    finally:
        resp.close()
    assert received < len(BIG)  # never the whole (wrong) file
    [event] = mismatch_events(large)
    assert event.detail["integrity"] == "mismatch" and event.detail["streamed"] is True
    assert "is damaged, sending stopped: sha256 mismatch" in caplog.text


def test_a_truncated_large_file_is_refused_before_sending(app, client, large):
    path = blob(app, large)
    path.write_bytes(path.read_bytes()[:-100])
    resp = client.get(path_of(large))
    assert resp.status_code == 503 and "damaged" in resp.json["message"]
    assert len(mismatch_events(large)) == 1


def test_a_range_of_a_large_file_cannot_be_checked_and_is_sent(app, client, large):
    """A part cannot be checked against the whole-file hash; `files check --deep` finds it."""
    flip_a_byte(app, large, 5000)
    ranged = client.get(path_of(large), headers={"Range": "bytes=4000-5999"})
    assert ranged.status_code == 206 and len(ranged.data) == 2000
    assert mismatch_events(large) == []
    # a range that is the whole file, read start to end, is checked after all
    stopped_by_damage(client.get(path_of(large), headers={"Range": "bytes=0-"}, buffered=False))
    assert len(mismatch_events(large)) == 1


def test_a_real_client_sees_an_incomplete_read(app, large):
    """Over a real socket: Content-Length promised, fewer bytes delivered, connection closed."""
    sound = path_of(large)
    with serving(app) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", sound)
        good = conn.getresponse()
        assert good.status == 200 and good.read() == BIG
        conn.close()

        flip_a_byte(app, large, len(BIG) // 3)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", sound)
        bad = conn.getresponse()
        assert bad.status == 200 and int(bad.headers["Content-Length"]) == len(BIG)
        with pytest.raises(http.client.IncompleteRead) as cut:
            bad.read()
        conn.close()
    assert len(cut.value.partial) < len(BIG)
    assert len(mismatch_events(large)) == 1


def test_dialects_that_inline_bytes_refuse_a_damaged_file(app, client, patient, make_user, make_token):
    """tscharts returns an image's bytes in JSON: those are checked too (503 in its shape, audited)."""
    import base64

    provider = make_user("provider")
    created = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {make_token(provider)}"},
                          json={"type": "Xray", "patient": patient.id,
                                "data": base64.b64encode(sample("xray.png")).decode()}).get_json()
    row = db.session.get(StoredFile, created["id"])
    path = blob(app, row)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    resp = client.get(f"/tscharts/v1/image/{row.id}/", headers={"Authorization": f"Token {make_token(provider)}"})
    assert resp.status_code == 503 and set(resp.get_json()) == {"detail"} and "damaged" in resp.get_json()["detail"]
    assert resp.headers["Retry-After"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.file_id == row.id, AuditEvent.action == "view"))
    assert event.detail["integrity"] == "mismatch"


# -- a large file hashed whole lately is sent as the plain file (sendfile) -------------------------

def view_as_a_server(client, row: StoredFile, **kwargs):
    """A view with a server's own `wsgi.file_wrapper` (gunicorn's sendfile()s what it is handed
    when that has a file descriptor); the response and the object the body is sent from."""
    handed: list = []

    class ServerFileWrapper(FileWrapper):
        def __init__(self, filelike, buffer_size: int = 8192):
            super().__init__(filelike, buffer_size)
            handed.append(filelike)

    resp = client.get(path_of(row), buffered=False, environ_overrides={"wsgi.file_wrapper": ServerFileWrapper},
                      **kwargs)
    return resp, handed[0]


def test_a_large_file_read_whole_and_intact_is_then_sent_as_a_plain_file(app, client, large):
    first, source = view_as_a_server(client, large)
    assert isinstance(source, VerifiedStream)  # checked as it streams
    assert b"".join(first.response) == BIG
    first.close()
    second, source = view_as_a_server(client, large)
    try:  # a real file now: a server may sendfile() it, the hash of the first view covers it
        assert not isinstance(source, VerifiedStream) and source.fileno() >= 0
        assert b"".join(second.response) == BIG
    finally:
        second.close()
    ranged = client.get(path_of(large), headers={"Range": "bytes=4000-5999"})
    assert ranged.status_code == 206 and ranged.data == BIG[4000:6000]
    assert len(view_events(large)) == 3 and mismatch_events(large) == []


def test_a_view_cut_off_before_the_end_proves_nothing(app, client, large):
    partial = client.get(path_of(large), buffered=False)
    next(iter(partial.response))  # the client went away after the first chunk
    partial.close()
    again, source = view_as_a_server(client, large)
    again.close()
    assert isinstance(source, VerifiedStream)


def test_a_changed_blob_is_checked_again_after_an_intact_view(app, client, large, caplog):
    whole = client.get(path_of(large))
    assert whole.data == BIG
    flip_a_byte(app, large, len(BIG) // 2)  # a write: a new mtime, so not the blob that was hashed
    resp, source = view_as_a_server(client, large)
    assert isinstance(source, VerifiedStream)
    stopped_by_damage(resp)
    assert len(mismatch_events(large)) == 1


def test_offload_verified_for_zero_checks_every_view(app, client, large):
    app.config["OFFLOAD_VERIFIED_FOR"] = 0
    assert client.get(path_of(large)).data == BIG
    resp, source = view_as_a_server(client, large)
    resp.close()
    assert isinstance(source, VerifiedStream)
