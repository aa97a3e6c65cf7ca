"""A visit's clinician and status: set when it opens, shown to patient and staff, changed by
staff only (audited), on the pages and from the CLI."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.errors import BadRequest
from app.extensions import db
from app.models import Action, AuditEvent, Role, Visit, VisitStatus
from app.services import accounts


@pytest.fixture
def people(make_user, make_account):
    other = make_account("clinic-b", "Clinic B")
    return {
        "provider": make_user(Role.PROVIDER, username="dr.rivera", full_name="Dr. Ana Rivera"),
        "alice": make_user(full_name="Alice Moreno"),
        "bob": make_user(full_name="Bob Okafor"),
        "outsider": make_user(Role.PROVIDER, account=other, full_name="Dr. Elsewhere"),
    }


def status_url(visit: Visit) -> str:
    return f"/patients/{visit.patient_id}/visits/{visit.public_id}/status"


def updates() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == Action.UPDATE)))


def test_a_visit_opened_by_a_provider_is_with_them_and_open(people):
    visit = accounts.create_visit(people["alice"], reason="Skin check", actor=people["provider"])
    assert (visit.provider_id, visit.status) == (people["provider"].id, VisitStatus.OPEN)
    assert accounts.create_visit(people["alice"], reason="From an EHR").provider_id is None


@pytest.mark.parametrize("who", ["outsider", "bob"])
def test_only_staff_of_the_clinic_can_be_a_visits_clinician(people, who):
    with pytest.raises(BadRequest, match="not a clinician"):
        accounts.create_visit(people["alice"], provider=people[who])
    assert db.session.scalar(select(Visit)) is None


def test_patient_and_staff_see_when_with_whom_and_in_what_state(make_page_client, people):
    alice, provider = people["alice"], people["provider"]
    accounts.create_visit(alice, external_id="ext-9", reason="Skin check", actor=provider)
    mine = make_page_client(alice).get("/documents/visits").get_data(as_text=True)
    assert "with Dr. Ana Rivera" in mine and ">Open</span>" in mine
    assert "ext-9" not in mine and 'name="status"' not in mine  # no internal reference, no control
    chart = make_page_client(provider).get(f"/patients/{alice.id}/visits").get_data(as_text=True)
    assert "with Dr. Ana Rivera" in chart and "Ref. ext-9" in chart and 'name="status"' in chart


def test_staff_change_a_visits_status_and_it_is_audited(make_page_client, people):
    alice, provider = people["alice"], people["provider"]
    visit = accounts.create_visit(alice, reason="Skin check", actor=provider)
    client = make_page_client(provider)
    token = client.csrf(f"/patients/{alice.id}/visits")
    resp = client.post(status_url(visit), data={"csrf_token": token, "status": "completed"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/patients/{alice.id}/visits#visit-{visit.public_id}")
    db.session.expire_all()
    assert db.session.get(Visit, visit.id).status == VisitStatus.COMPLETED
    [event] = updates()
    assert (event.actor_id, event.patient_id) == (provider.id, alice.id)
    assert event.detail == {"visit": visit.public_id, "status": "completed", "was": "open"}
    page = client.get(f"/patients/{alice.id}/visits").get_data(as_text=True)
    assert "“Skin check” is now marked completed." in page and ">Completed</span>" in page
    # the same status again changes nothing and records nothing
    client.post(status_url(visit), data={"csrf_token": token, "status": "completed"})
    assert len(updates()) == 1


def test_a_status_that_does_not_exist_is_refused_in_words(make_page_client, people):
    visit = accounts.create_visit(people["alice"], reason="Skin check", actor=people["provider"])
    client = make_page_client(people["provider"])
    token = client.csrf(f"/patients/{visit.patient_id}/visits")
    client.post(status_url(visit), data={"csrf_token": token, "status": "finished"})
    page = client.get(f"/patients/{visit.patient_id}/visits").get_data(as_text=True)
    assert "A visit&#39;s status is one of: open, completed, cancelled." in page
    assert db.session.scalar(select(Visit.status)) == "open" and not updates()


def test_no_one_else_changes_a_visit(make_page_client, people):
    alice, bob = people["alice"], people["bob"]
    visit = accounts.create_visit(alice, reason="Skin check", actor=people["provider"])
    patient = make_page_client(alice)
    assert patient.post(status_url(visit), data={"csrf_token": patient.csrf("/documents"),
                                                 "status": "cancelled"}).status_code == 404
    outsider = make_page_client(people["outsider"])
    assert outsider.post(status_url(visit), data={"csrf_token": outsider.csrf("/patients"),
                                                  "status": "cancelled"}).status_code == 404
    staff = make_page_client(people["provider"])  # alice's visit through bob's chart
    wrong_chart = f"/patients/{bob.id}/visits/{visit.public_id}/status"
    assert staff.post(wrong_chart, data={"csrf_token": staff.csrf("/patients"), "status": "cancelled"}).status_code == 404
    assert staff.post(status_url(visit), data={"status": "cancelled"}).status_code == 400  # no CSRF token
    assert db.session.scalar(select(Visit.status)) == "open" and not updates()


def test_the_cli_opens_visits_with_a_clinician_lists_and_changes_them(runner, people):
    made = runner.invoke(args=["visits", "create", "--patient", people["alice"].username, "--reason", "Skin check",
                               "--provider", "dr.rivera", "--external-id", "CC-1"])
    assert made.exit_code == 0, made.output
    listed = json.loads(runner.invoke(args=["visits", "list", "--json"]).output)
    assert [(v["reason"], v["provider"], v["status"]) for v in listed] == [("Skin check", "dr.rivera", "open")]
    table = runner.invoke(args=["visits", "list"]).output
    assert "provider" in table.splitlines()[0].lower() and "status" in table.splitlines()[0].lower()
    changed = runner.invoke(args=["visits", "status", "CC-1", "cancelled", "--as", "dr.rivera"])
    assert changed.exit_code == 0 and changed.output.strip().endswith("cancelled")
    assert json.loads(runner.invoke(args=["visits", "show", "CC-1", "--json"]).output)["status"] == "cancelled"
    refused = runner.invoke(args=["visits", "status", "CC-1", "open", "--as", people["alice"].username])
    assert refused.exit_code != 0 and "No such visit." in refused.output
    bad = runner.invoke(args=["visits", "create", "--patient", people["alice"].username, "--provider",
                              people["bob"].username])
    assert bad.exit_code != 0 and "not a clinician" in bad.output
