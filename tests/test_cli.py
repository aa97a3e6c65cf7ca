"""Every admin CLI command of issue 2 through Flask's CLI runner: output, exit codes, side effects."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import sample
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditEvent, StoredFile, User, Visit
from app.models.base import utcnow
from app.services import accounts, files
from app.services.audit import Origin


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(result, words: str) -> str:
    assert result.exit_code != 0, result.output
    assert words in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return result.output


# -- accounts ----------------------------------------------------------------------------------

def test_accounts_create(runner):
    assert ok(runner.invoke(args=["accounts", "create", "north", "--name", "North Clinic"])) == "north\n"
    assert accounts.get_account("north").name == "North Clinic"
    fails(runner.invoke(args=["accounts", "create", "north", "--name", "Again"]), "already exists")
    fails(runner.invoke(args=["accounts", "create", "bad code!", "--name", "X"]), "account code")
    fails(runner.invoke(args=["accounts", "create", "south", "--name", "  "]), "needs a name")
    assert runner.invoke(args=["accounts", "create", "south"]).exit_code == 2  # --name is required


# -- users -------------------------------------------------------------------------------------

def user_args(*extra: str, username: str = "nina") -> list[str]:
    return ["users", "create", "--account", "clinic-a", "--role", "provider", "--username", username,
            "--full-name", "Nina Park", *extra]


def test_users_create_prints_only_the_id(runner, clinic):
    out = ok(runner.invoke(args=user_args("--email", "nina@example.org")))
    user = accounts.get_user("nina")
    assert out == f"{user.id}\n"
    assert (user.role, user.full_name, user.email, user.password_hash) == ("provider", "Nina Park",
                                                                            "nina@example.org", None)


def test_users_create_with_password_stdin(runner, clinic):
    ok(runner.invoke(args=user_args("--password-stdin"), input="s3cret-enough\n"))
    assert accounts.authenticate("nina", "s3cret-enough").username == "nina"
    assert accounts.authenticate("nina", "s3cret-enough\n") is None


@pytest.mark.parametrize("stdin,words", [("", "No password"), ("\n", "No password"), ("short\n", "at least 8")])
def test_users_create_bad_password_stdin(runner, clinic, stdin, words):
    fails(runner.invoke(args=user_args("--password-stdin"), input=stdin), words)
    assert db.session.scalar(select(User).where(User.username == "nina")) is None


def test_users_create_errors(runner, clinic):
    ok(runner.invoke(args=user_args()))
    fails(runner.invoke(args=user_args()), "is taken")
    fails(runner.invoke(args=user_args(username="bad name")), "Usernames use")
    fails(runner.invoke(args=["users", "create", "--account", "nowhere", "--role", "patient", "--username", "x",
                              "--full-name", "X"]), "No account with code 'nowhere'")
    bad_role = runner.invoke(args=["users", "create", "--account", "clinic-a", "--role", "king",
                                   "--username", "x", "--full-name", "X"])
    assert bad_role.exit_code == 2 and "king" in bad_role.output


# -- tokens ------------------------------------------------------------------------------------

def test_tokens_create_prints_only_the_token(runner, make_user, client):
    user = make_user("provider", username="doc", password=None)
    out = ok(runner.invoke(args=["tokens", "create", "doc", "--name", "laptop"]))
    token = out.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", token) and out == token + "\n"
    row = db.session.scalar(select(ApiToken))
    assert (row.user_id, row.name, row.prefix, row.expires_at) == (user.id, "laptop", token[:8], None)
    assert token not in (row.token_hash or "")
    assert client.get("/api_v3/files", headers={"X-ApiToken": token}).status_code == 200


def test_tokens_create_with_expiry_and_errors(runner, make_user):
    make_user("provider", username="doc", password=None)
    ok(runner.invoke(args=["tokens", "create", "doc", "--expires-days", "3"]))
    row = db.session.scalar(select(ApiToken))
    assert timedelta(days=2, hours=23) < row.expires_at - utcnow() <= timedelta(days=3)
    fails(runner.invoke(args=["tokens", "create", "doc", "--expires-days", "0"]), "at least 1")
    fails(runner.invoke(args=["tokens", "create", "ghost"]), "No user 'ghost'")
    assert runner.invoke(args=["tokens", "create", "doc", "--expires-days", "soon"]).exit_code == 2


def test_tokens_list_and_revoke(runner, make_user, make_token, client):
    assert ok(runner.invoke(args=["tokens", "list"])) == "No tokens.\n"
    doc = make_user("provider", username="doc", password=None)
    live = make_token(doc)
    make_token(doc)
    expired = db.session.scalars(select(ApiToken).order_by(ApiToken.id)).all()[1]
    expired.expires_at = utcnow() - timedelta(days=1)
    db.session.commit()
    out = ok(runner.invoke(args=["tokens", "list"]))
    assert out.splitlines()[0].split() == ["ID", "USER", "NAME", "PREFIX", "STATE", "CREATED", "EXPIRES"]
    assert "active" in out.splitlines()[1] and live[:8] in out.splitlines()[1]
    assert "expired" in out.splitlines()[2]
    assert live not in out  # never the token itself

    first = db.session.scalars(select(ApiToken).order_by(ApiToken.id)).first()
    assert ok(runner.invoke(args=["tokens", "revoke", str(first.id)])) == f"Token {first.id} (doc) revoked.\n"
    assert "revoked" in ok(runner.invoke(args=["tokens", "list"])).splitlines()[1]
    assert client.get("/api_v3/files", headers={"X-ApiToken": live}).status_code == 401
    ok(runner.invoke(args=["tokens", "revoke", str(first.id)]))  # twice is fine
    fails(runner.invoke(args=["tokens", "revoke", "999"]), "No token with id 999")
    assert runner.invoke(args=["tokens", "revoke", "abc"]).exit_code == 2


# -- visits ------------------------------------------------------------------------------------

def test_visits_create(runner, make_user):
    patient = make_user("patient", username="pat", password=None)
    make_user("provider", username="doc", password=None)
    out = ok(runner.invoke(args=["visits", "create", "--patient", "pat", "--external-id", "EXT-1"]))
    visit = db.session.scalar(select(Visit))
    assert out == f"{visit.public_id}\n" and visit.patient_id == patient.id and visit.external_id == "EXT-1"
    fails(runner.invoke(args=["visits", "create", "--patient", "pat", "--external-id", "EXT-1"]), "already exists")
    fails(runner.invoke(args=["visits", "create", "--patient", "doc"]), "not a patient")
    fails(runner.invoke(args=["visits", "create", "--patient", "ghost"]), "No user 'ghost'")
    ok(runner.invoke(args=["visits", "create", "--patient", "pat"]))


# -- files check -------------------------------------------------------------------------------

@pytest.fixture
def stored(make_user, make_file):
    """Two real files in a patient's chart; returns their rows."""
    patient = make_user("patient", password=None)
    return [make_file(patient, "letter.pdf"), make_file(patient, "photo.jpg")]


def blob_path(app, row: StoredFile) -> Path:
    return Path(app.config["STORAGE_ROOT"]) / row.storage_key


def test_files_check_clean(runner, stored):
    out = ok(runner.invoke(args=["files", "check"]))
    assert "OK: 2 files checked, no problems." in out
    assert "OK: 2 files checked deeply" in ok(runner.invoke(args=["files", "check", "--deep"]))


def test_files_check_missing_blob(runner, app, stored):
    blob_path(app, stored[0]).unlink()
    result = runner.invoke(args=["files", "check"])
    assert result.exit_code == 1
    assert f"missing: {stored[0].public_id} (letter.pdf)" in result.output
    assert "Error: 1 problem(s) found in 2 files." in result.output


def test_files_check_size_mismatch(runner, app, stored):
    with open(blob_path(app, stored[1]), "ab") as fh:
        fh.write(b"extra")
    result = runner.invoke(args=["files", "check"])
    assert result.exit_code == 1
    size = len(sample("photo.jpg"))
    assert f"size mismatch: {stored[1].public_id} (photo.jpg): row says {size}, blob has {size + 5}" in result.output


def test_files_check_checksum_mismatch_needs_deep(runner, app, stored):
    path = blob_path(app, stored[0])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))
    assert runner.invoke(args=["files", "check"]).exit_code == 0
    result = runner.invoke(args=["files", "check", "--deep"])
    assert result.exit_code == 1
    assert f"checksum mismatch: {stored[0].public_id} (letter.pdf)" in result.output


def make_old(path: Path, hours: float) -> None:
    """Backdate a file's mtime, as if it had been written `hours` ago."""
    when = time.time() - hours * 3600
    os.utime(path, (when, when))


def test_files_check_lists_debris_apart_and_does_not_fail_on_it(runner, app, stored):
    """Debris is listed with its size and age, but is not a problem: the exit code stays 0."""
    orphan = Path(app.config["STORAGE_ROOT"]) / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"left behind by a crash")
    old = Path(app.config["STORAGE_ROOT"]) / "ab" / ("ab" + "9" * 30)
    old.write_bytes(b"older")
    make_old(old, 30)
    result = runner.invoke(args=["files", "check"])
    assert result.exit_code == 0, result.output
    assert f"orphan blob: ab/ab{'0' * 30} (22 bytes, 0 min old; younger than 24 h, kept)" in result.output
    assert f"orphan blob: ab/ab{'9' * 30} (5 bytes, 30.0 h old; past the grace period)" in result.output
    assert ("Debris (not a failure): 2 item(s), 27 bytes; 1 older than the 24 h grace period"
            in result.output)
    assert "OK: 2 files checked, no problems." in result.output


def test_files_check_with_problems_and_debris_fails_on_the_problems(runner, app, stored):
    blob_path(app, stored[0]).unlink()
    orphan = Path(app.config["STORAGE_ROOT"]) / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"x")
    result = runner.invoke(args=["files", "check"])
    assert result.exit_code == 1
    assert f"missing: {stored[0].public_id} (letter.pdf)" in result.output
    assert f"orphan blob: ab/ab{'0' * 30} (1 bytes" in result.output
    assert "Error: 1 problem(s) found in 2 files." in result.output  # the orphan is not counted


def test_files_check_deleted_files_still_need_their_bytes(runner, app, stored):
    files.delete(stored[0].patient, Origin.cli(), stored[0].public_id)
    blob_path(app, stored[0]).unlink()
    assert runner.invoke(args=["files", "check"]).exit_code == 1


# -- files purge -------------------------------------------------------------------------------

def delete_days_ago(row: StoredFile, days: int) -> None:
    files.delete(row.patient, Origin.cli(), row.public_id)
    row.deleted_at = utcnow() - timedelta(days=days)
    db.session.commit()


def test_files_purge_dry_run_then_yes(runner, app, stored):
    old, recent = stored
    delete_days_ago(old, 40)
    delete_days_ago(recent, 5)

    dry = ok(runner.invoke(args=["files", "purge", "--older-than", "30", "--dry-run"]))
    assert f"would purge: {old.public_id} (letter.pdf)" in dry
    assert recent.public_id not in dry
    assert "1 file(s) would be purged." in dry
    assert blob_path(app, old).exists()
    db.session.refresh(old)
    assert old.purged_at is None

    out = ok(runner.invoke(args=["files", "purge", "--older-than", "30", "--yes"]))
    assert f"purged: {old.public_id} (letter.pdf)" in out and "1 file(s) purged." in out
    assert not blob_path(app, old).exists()
    assert blob_path(app, recent).exists()
    db.session.refresh(old)
    assert old.purged_at is not None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "purge")).file_id == old.id
    check = ok(runner.invoke(args=["files", "check"]))  # purged rows are not "missing"
    assert "Debris: none." in check
    again = ok(runner.invoke(args=["files", "purge", "--older-than", "30", "--yes"]))
    assert "0 file(s) purged." in again


def test_files_purge_defaults_to_the_trash_retention(runner, app, stored):
    """Without --older-than: files deleted more than TRASH_RETENTION_DAYS (30) ago."""
    old, recent = stored
    delete_days_ago(old, 31)
    delete_days_ago(recent, 29)
    out = ok(runner.invoke(args=["files", "purge", "--yes"]))
    assert f"purged: {old.public_id} (letter.pdf)" in out and "1 file(s) purged." in out
    assert not blob_path(app, old).exists() and blob_path(app, recent).exists()
    app.config["TRASH_RETENTION_DAYS"] = 7
    assert f"purged: {recent.public_id} (photo.jpg)" in ok(runner.invoke(args=["files", "purge", "--yes"]))


def test_files_purge_removes_renditions_of_purged_files(runner, app, stored, client):
    from app.urls import view_url

    photo = stored[1]
    assert client.get(view_url(photo, size="50x50")).status_code == 200
    root = Path(app.config["STORAGE_ROOT"])
    assert list((root / "renditions").rglob("*.png"))
    delete_days_ago(photo, 10)
    ok(runner.invoke(args=["files", "purge", "--older-than", "7", "--yes"]))
    assert not list((root / "renditions").rglob("*.png"))


def test_files_purge_asks_first(runner, app, stored):
    delete_days_ago(stored[0], 40)
    declined = runner.invoke(args=["files", "purge", "--older-than", "30"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert blob_path(app, stored[0]).exists()
    accepted = runner.invoke(args=["files", "purge", "--older-than", "30"], input="y\n")
    assert accepted.exit_code == 0 and "1 file(s) purged" in accepted.output
    assert not blob_path(app, stored[0]).exists()


@pytest.mark.parametrize("days", ["-1", "abc", ""])
def test_files_purge_bad_days(runner, days):
    assert runner.invoke(args=["files", "purge", "--older-than", days, "--yes"]).exit_code == 2


# -- files cleanup (debris) --------------------------------------------------------------------

def test_files_cleanup_no_longer_purges_deletions(runner, app, stored):
    delete_days_ago(stored[0], 400)
    assert runner.invoke(args=["files", "cleanup", "--older-than", "30", "--yes"]).exit_code == 2  # moved to purge
    ok(runner.invoke(args=["files", "cleanup", "--grace-hours", "0", "--yes"]))
    assert blob_path(app, stored[0]).exists()
    db.session.refresh(stored[0])
    assert stored[0].purged_at is None


def test_files_cleanup_dry_run_then_yes(runner, app, stored):
    root = Path(app.config["STORAGE_ROOT"])
    old_orphan, young_orphan = root / "cd" / ("cd" + "1" * 30), root / "cd" / ("cd" + "2" * 30)
    old_orphan.parent.mkdir(exist_ok=True)
    old_orphan.write_bytes(b"orphan")
    young_orphan.write_bytes(b"in flight")
    make_old(old_orphan, 25)

    dry = ok(runner.invoke(args=["files", "cleanup", "--dry-run"]))
    assert f"would remove orphan blob: cd/cd{'1' * 30} (6 bytes, 25.0 h old)" in dry
    assert f"kept (younger than 24 h) orphan blob: cd/cd{'2' * 30} (9 bytes" in dry
    assert "1 debris item(s) would be removed (6 bytes), 1 kept (younger than 24 h)." in dry
    assert old_orphan.exists() and young_orphan.exists()

    out = ok(runner.invoke(args=["files", "cleanup", "--yes"]))
    assert f"removed orphan blob: cd/cd{'1' * 30} (6 bytes" in out
    assert "1 debris item(s) removed (6 bytes), 1 kept (younger than 24 h)." in out
    assert not old_orphan.exists() and young_orphan.exists()
    assert all(blob_path(app, row).exists() for row in stored)

    assert "0 debris item(s) removed" in ok(runner.invoke(args=["files", "cleanup", "--grace-hours", "48", "--yes"]))
    assert young_orphan.exists()
    out = ok(runner.invoke(args=["files", "cleanup", "--grace-hours", "0", "--yes"]))
    assert "1 debris item(s) removed (9 bytes), 0 kept" in out and not young_orphan.exists()
    assert all(blob_path(app, row).exists() for row in stored)
    assert "Debris: none." in ok(runner.invoke(args=["files", "check", "--deep"]))


def test_files_cleanup_asks_first(runner, app, stored):
    orphan = Path(app.config["STORAGE_ROOT"]) / "cd" / ("cd" + "1" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    declined = runner.invoke(args=["files", "cleanup", "--grace-hours", "0"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output and orphan.exists()
    accepted = runner.invoke(args=["files", "cleanup", "--grace-hours", "0"], input="y\n")
    assert accepted.exit_code == 0 and "1 debris item(s) removed" in accepted.output
    assert not orphan.exists()


@pytest.mark.parametrize("hours", ["-1", "abc", ""])
def test_files_cleanup_bad_grace(runner, hours):
    assert runner.invoke(args=["files", "cleanup", "--grace-hours", hours, "--yes"]).exit_code == 2


# -- files restore -----------------------------------------------------------------------------

def test_files_restore(runner, app, stored, client):
    row = stored[0]
    files.delete(row.patient, Origin.cli(), row.public_id)
    assert ok(runner.invoke(args=["files", "restore", row.public_id])) == f"Restored {row.public_id} (letter.pdf).\n"
    db.session.refresh(row)
    assert row.deleted_at is None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "restore")).file_id == row.id
    fails(runner.invoke(args=["files", "restore", row.public_id]), "not deleted")
    files.delete(row.patient, Origin.cli(), row.public_id)
    ok(runner.invoke(args=["files", "restore", str(row.id)]))  # the integer id works too


def test_files_restore_errors(runner, app, stored):
    fails(runner.invoke(args=["files", "restore", "00000000-0000-4000-8000-000000000000"]), "No file")
    fails(runner.invoke(args=["files", "restore", "\u00b2"]), "No file")
    fails(runner.invoke(args=["files", "restore", "99999"]), "No file 99999")
    delete_days_ago(stored[0], 40)
    ok(runner.invoke(args=["files", "purge", "--older-than", "30", "--yes"]))
    fails(runner.invoke(args=["files", "restore", stored[0].public_id]), "purged")


# -- the console script ------------------------------------------------------------------------

def test_chartbox_console_script(tmp_path):
    """The installed `chartbox` script runs the same commands as `flask --app wsgi`."""
    script = Path(sys.executable).with_name("chartbox")
    if not script.exists():
        pytest.skip("the chartbox console script is not installed in this environment")
    env = {**os.environ, "FLASK_SECRET_KEY": "x" * 32,
           "FLASK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'cli.db'}",
           "FLASK_STORAGE_ROOT": str(tmp_path / "files")}
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert help_text.returncode == 0, help_text.stderr
    for group in ("accounts", "users", "tokens", "visits", "files", "demo"):
        assert group in help_text.stdout
    missing = subprocess.run([str(script), "tokens", "create", "ghost"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert missing.returncode == 1
    assert "Error:" in missing.stderr and "Traceback" not in missing.stderr
