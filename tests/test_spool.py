"""An upload's bytes are written once on their way in: werkzeug writes each multipart file part
straight into the upload temp folder (spool.Part), spool() hashes it where it lies, and the
filesystem storage renames it into place (Storage.put_file). Nothing is left behind either way."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from conftest import sample
from sqlalchemy import select

from app.errors import TooLarge
from app.extensions import db
from app.models import StoredFile
from app.services import spool


def test_an_unread_part_is_taken_over_not_copied(tmp_path):
    part = spool.Part(str(tmp_path))
    part.write(b"x" * 3_000_000)
    part.seek(0)
    spooled = spool.spool(part, 10_000_000, str(tmp_path))
    assert spooled.path == part.path and spooled.size == 3_000_000
    assert spooled.sha256 == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    part.close()  # the request ends: the part is the spool's now, so it stays
    assert os.path.exists(spooled.path)
    spooled.discard()
    assert os.listdir(tmp_path) == []


def test_a_part_too_large_is_refused_and_removed_with_the_request(tmp_path):
    part = spool.Part(str(tmp_path))
    part.write(b"x" * 2000)
    part.seek(0)
    with pytest.raises(TooLarge):
        spool.spool(part, 1000, str(tmp_path))
    part.close()
    assert os.listdir(tmp_path) == []


def test_a_part_already_read_from_or_elsewhere_is_copied(tmp_path):
    other = tmp_path / "other"
    part = spool.Part(str(other))
    part.write(b"0123456789")
    part.seek(4)
    with spool.spool(part, 100, str(tmp_path)) as spooled:  # another folder: copied from where it stands
        assert spooled.path != part.path and Path(spooled.path).read_bytes() == b"456789"
    part.close()
    assert os.listdir(other) == [] and os.listdir(tmp_path) == ["other"]


def test_an_upload_moves_its_part_into_storage(app, client, make_user, make_token, monkeypatch):
    patient = make_user("patient")
    taken: list[int] = []
    take = spool._take

    def observed(part, max_bytes):  # observes (the inode werkzeug wrote the part to), changes nothing
        taken.append(os.fstat(part.fileno()).st_ino)
        return take(part, max_bytes)

    monkeypatch.setattr(spool, "_take", observed)
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(patient)},
                       data={"file": (io.BytesIO(sample("letter.pdf")), "letter.pdf")})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    row = db.session.scalars(select(StoredFile)).one()
    stored = Path(app.config["STORAGE_ROOT"], row.storage_key)
    assert taken == [stored.stat().st_ino]  # the very file werkzeug wrote, renamed into place
    assert stored.read_bytes() == sample("letter.pdf")
    assert os.listdir(os.path.join(app.instance_path, "tmp")) == []
