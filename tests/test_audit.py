"""A complete, sealed audit trail: events for every access and refusal, hash-chained;
`chartbox audit verify` catches a changed, inserted or removed event; `audit export` streams it."""
from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Role


def activity(client, make_user, make_token, make_file):
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    row = make_file(provider, "letter.pdf", patient=patient)
    staff = {"X-ApiToken": make_token(provider)}
    client.get(f"/api_v3/files?target_id={patient.id}", headers=staff)
    link = client.get(f"/api_v3/files/{row.public_id}", headers=staff).json["data"]["fullpath"]
    client.get(link)
    client.post(f"/api_v3/files/{row.public_id}", headers=staff, data={"name": "r.pdf"})
    return patient, provider, row


def test_the_chain_verifies_and_catches_a_changed_event(client, runner, make_user, make_token, make_file):
    activity(client, make_user, make_token, make_file)
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "the chain is intact" in ok.output
    victim = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).first()
    with db.engine.begin() as conn:  # an insider edits a row behind the app's back
        conn.execute(sa.text("UPDATE audit_events SET ip = '10.0.0.9' WHERE id = :id"), {"id": victim.id})
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and f"event seq {victim.seq}" in bad.output and "changed" in bad.output


def test_verify_catches_a_removed_event_in_the_middle_and_at_the_end(client, runner, make_user, make_token,
                                                                     make_file):
    activity(client, make_user, make_token, make_file)
    seqs = list(db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :s"), {"s": seqs[-1]})
    end = runner.invoke(args=["audit", "verify"])
    assert end.exit_code == 1 and "removed" in end.output
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :s"), {"s": seqs[1]})
    middle = runner.invoke(args=["audit", "verify"])
    assert middle.exit_code == 1 and f"event seq {seqs[1]} was removed" in middle.output


def test_verify_catches_an_inserted_event(client, runner, make_user, make_token, make_file):
    activity(client, make_user, make_token, make_file)
    first = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).first()
    with db.engine.begin() as conn:  # a forged row slipped between two real ones
        conn.execute(sa.text("UPDATE audit_events SET seq = seq + 1000 WHERE seq > :s"), {"s": first.seq})
        conn.execute(sa.text(
            "INSERT INTO audit_events (seq, created_at, action, outcome, channel, prev_hash, hash) "
            "VALUES (:s, :t, 'view', 'ok', 'web', :p, :p)"), {"s": first.seq + 1, "t": first.created_at, "p": first.hash})
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1


def test_events_carry_who_what_where_and_never_secrets(client, make_user, make_token, make_file):
    patient, provider, row = activity(client, make_user, make_token, make_file)
    events = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    view = next(e for e in events if e.action == "view")
    assert (view.actor_id, view.actor_role, view.patient_id, view.file_id, view.channel, view.outcome) == (
        provider.id, "provider", patient.id, row.id, "link", "ok")
    assert view.ip == "127.0.0.1" and view.request_id
    dump = json.dumps([{c.name: str(getattr(e, c.name)) for c in AuditEvent.__table__.columns} for e in events])
    token_rows = db.session.execute(sa.text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert "auth_code" not in dump and all(t not in dump for t in token_rows)


def test_refusals_on_real_objects_are_recorded(client, make_user, make_token, make_file):
    owner, stranger = make_user(Role.PATIENT), make_user(Role.PATIENT)
    row = make_file(owner, "notes.txt")
    resp = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": make_token(stranger)})
    assert resp.status_code == 404
    refused = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "refused")).one()
    assert (refused.actor_id, refused.file_id, refused.outcome, refused.detail["status"]) == (
        stranger.id, row.id, "refused", 404)


def test_cli_commands_are_audited_without_their_secrets(runner, clinic):
    result = runner.invoke(args=["users", "create", "--account", clinic.code, "--role", "provider",
                                 "--username", "dr.audit", "--full-name", "Dr Audit", "--password-stdin"],
                           input="a-very-secret-password\n")
    assert result.exit_code == 0, result.output
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "command")).one()
    assert event.detail["command"].endswith("users create") and event.detail["options"]["username"] == "dr.audit"
    assert "a-very-secret-password" not in json.dumps(event.detail)


def test_export_streams_jsonl_and_csv_by_patient_and_time(client, runner, make_user, make_token, make_file):
    patient = activity(client, make_user, make_token, make_file)[0]
    lines = runner.invoke(args=["audit", "export", "--patient", str(patient.id)]).output.splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows and all(r["patient_id"] == patient.id for r in rows)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    table = list(csv.DictReader(io.StringIO(runner.invoke(args=["audit", "export", "--format", "csv"]).output)))
    assert {r["action"] for r in table} >= {"upload", "view", "rename"}
    later = runner.invoke(args=["audit", "export", "--since", "2999-01-01"]).output
    assert later == ""
    assert runner.invoke(args=["audit", "export", "--since", "yesterday"]).exit_code == 2


def test_sign_ins_and_sign_outs_are_audited(make_page_client, make_user, client):
    user = make_user(Role.PATIENT, username="alice.audit")
    page = make_page_client()
    page.post("/login", data={"csrf_token": page.csrf(), "username": "alice.audit", "password": "wrong password!"})
    page.sign_in(user)
    page.post("/logout", data={"csrf_token": page.csrf("/profile")})
    events = [(e.action, e.outcome, (e.detail or {}).get("username"), e.actor_id)
              for e in db.session.scalars(select(AuditEvent).where(
                  AuditEvent.action.in_(["sign_in", "sign_out"])).order_by(AuditEvent.seq))]
    assert events == [("sign_in", "refused", "alice.audit", None), ("sign_in", "ok", "alice.audit", user.id),
                      ("sign_out", "ok", None, user.id)]
    tscharts = client.post("/tscharts/v1/login/", json={"username": "nobody", "password": "x" * 12})
    assert tscharts.status_code == 403
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "sign_in")).all()[-1].channel == "tscharts"


def test_tokens_issued_and_revoked_are_audited(client, runner, make_user):
    user = make_user(Role.PROVIDER, username="dr.tokens")
    issued = runner.invoke(args=["tokens", "create", "dr.tokens", "--name", "EHR"])
    assert issued.exit_code == 0
    token = issued.output.strip()
    login = client.post("/tscharts/v1/login/", json={"username": "dr.tokens", "password": "correct horse battery"})
    client.post("/tscharts/v1/logout/", headers={"Authorization": f"Token {login.get_json()['token']}"})
    events = [(e.action, e.channel) for e in db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["token_create", "token_revoke"])).order_by(AuditEvent.seq))]
    assert events == [("token_create", "cli"), ("token_create", "tscharts"), ("token_revoke", "tscharts")]
    assert token not in json.dumps([e.detail for e in db.session.scalars(select(AuditEvent))], default=str)
    assert user.id


def test_a_request_without_a_valid_credential_is_recorded(client, make_user, make_file):
    row = make_file(make_user(Role.PATIENT), "notes.txt")
    assert client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": "0" * 40}).status_code == 401
    refused = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "refused")).one()
    assert (refused.actor_id, refused.outcome, refused.detail["status"], refused.channel) == (None, "refused", 401, "vsee")
    assert refused.detail["path"] == f"/api_v3/files/{row.public_id}"
