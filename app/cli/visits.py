"""`chartbox visits …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import emit, show
from app.models import VisitStatus
from app.services import accounts, visits
from app.services.audit import Origin

group = AppGroup("visits", help="Visits (encounters).")


@group.command("create")
@click.option("--patient", "username", required=True, help="The patient's username.")
@click.option("--external-id", default=None, help="An outside system's id for the visit.")
@click.option("--reason", default="", help="What the visit is for (shown to the patient).")
@click.option("--provider", "provider_name", default=None, help="The clinician's username (staff of the clinic).")
@reported
def create(username: str, external_id: str | None, reason: str, provider_name: str | None) -> None:
    """Open a visit; prints only the visit's id."""
    provider = accounts.get_user(provider_name) if provider_name else None
    visit = accounts.create_visit(accounts.get_user(username), external_id, reason, origin=Origin.cli(),
                                  provider=provider)
    click.echo(visit.public_id)


@group.command("status")
@click.argument("visit")
@click.argument("status", type=click.Choice([s.value for s in VisitStatus]))
@click.option("--as", "username", required=True, help="The staff member making the change (audited as theirs).")
@reported
def status_(visit: str, status: str, username: str) -> None:
    """Mark a visit open, completed or cancelled."""
    row = visits.set_status(accounts.get_user(username), accounts.get_visit(visit).public_id, VisitStatus(status),
                            Origin.cli())
    click.echo(f"{row.public_id} {row.status}")


def _visit(visit) -> dict:
    return {"id": visit.public_id, "patient": visit.patient.username, "external_id": visit.external_id,
            "reason": visit.reason, "provider": visit.provider.username if visit.provider else None,
            "status": visit.status, "created_at": visit.created_at}


@group.command("list")
@click.option("--patient", "username", default=None, help="Only this patient's visits.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of the table.")
@reported
def list_(username: str | None, as_json: bool) -> None:
    """Visits, newest first: id, patient, external id, reason, provider, status, opened."""
    patient = accounts.get_user(username) if username else None
    emit([_visit(v) for v in accounts.list_visits(patient)],
         ["id", "patient", "external_id", "reason", "provider", "status", "created_at"],
         as_json, "No visits.")


@group.command("show")
@click.argument("visit")
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(visit: str, as_json: bool) -> None:
    """One visit, by its id or external id."""
    show(_visit(accounts.get_visit(visit)), as_json)
