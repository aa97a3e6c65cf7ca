"""Each patient's access history: on every document, who opened, downloaded or changed it, and
when — in the pages and through GET /api_v3/files/<id>/access, under the file's view rules."""
from __future__ import annotations

from app.models import Role


def test_a_patient_reads_who_looked_at_their_document(client, make_user, make_token, make_file, make_page_client):
    patient = make_user(Role.PATIENT, full_name="Alice Moreno")
    provider = make_user(Role.PROVIDER, full_name="Dr. Ana Rivera")
    row = make_file(provider, "letter.pdf", patient=patient)
    staff = {"X-ApiToken": make_token(provider)}
    link = client.get(f"/api_v3/files/{row.public_id}", headers=staff).json["data"]["fullpath"]
    assert client.get(link).status_code == 200  # the provider opens it through its link
    client.post(f"/api_v3/files/{row.public_id}", headers=staff, data={"name": "Referral.pdf"})
    own = {"X-ApiToken": make_token(patient)}
    history = client.get(f"/api_v3/files/{row.public_id}/access", headers=own)
    assert history.status_code == 200
    got = [(e["action"], e["who"], e["role"], e["via"]) for e in history.json["data"]]
    assert got == [("rename", "Dr. Ana Rivera", "provider", "API"),
                   ("view", "Dr. Ana Rivera", "provider", "shared link"),
                   ("upload", "Dr. Ana Rivera", "provider", "administrator")]
    mine = client.get(f"/api_v3/files/{row.public_id}", headers=own).json["data"]["fullpath"]
    client.get(mine)
    assert client.get(f"/api_v3/files/{row.public_id}/access", headers=own).json["data"][0]["who"] == "you"
    page = make_page_client(patient).get(f"/documents/{row.public_id}/history").get_data(as_text=True)
    assert "Dr. Ana Rivera" in page and "through a shared link" in page and "renamed" in page


def test_the_history_follows_the_files_view_rules(client, make_user, make_token, make_file):
    patient, stranger = make_user(Role.PATIENT), make_user(Role.PATIENT)
    row = make_file(patient, "notes.txt")
    resp = client.get(f"/api_v3/files/{row.public_id}/access", headers={"X-ApiToken": make_token(stranger)})
    assert resp.status_code == 404 and resp.json == {"code": 404, "message": "No such file."}


def test_reading_a_history_is_itself_accounted_for_and_never_lengthens_it(client, make_user, make_token, make_file,
                                                                           make_page_client):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Action, AuditEvent

    patient = make_user(Role.PATIENT)
    row = make_file(patient, "letter.pdf")

    def readings() -> list[AuditEvent]:
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == Action.LIST,
                                                                AuditEvent.file_id == row.id)))

    page = make_page_client(patient).get(f"/documents/{row.public_id}/details").get_data(as_text=True)
    api = client.get(f"/api_v3/files/{row.public_id}/access", headers={"X-ApiToken": make_token(patient)})
    assert api.status_code == 200 and "letter.pdf" in page
    assert [(e.actor_id, e.channel, e.detail["history"]) for e in readings()] == [(patient.id, "web", 1),
                                                                                  (patient.id, "vsee", 1)]
    assert len(api.get_json()["data"]) == 1  # the upload only: readings are not history
