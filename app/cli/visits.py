"""`chartbox visits …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import emit, show
from app.services import accounts
from app.services.audit import Origin

group = AppGroup("visits", help="Visits (encounters).")


@group.command("create")
@click.option("--patient", "username", required=True, help="The patient's username.")
@click.option("--external-id", default=None, help="An outside system's id for the visit.")
@reported
def create(username: str, external_id: str | None) -> None:
    """Open a visit; prints only the visit's id."""
    visit = accounts.create_visit(accounts.get_user(username), external_id, origin=Origin.cli())
    click.echo(visit.public_id)


def _visit(visit) -> dict:
    return {"id": visit.public_id, "patient": visit.patient.username, "external_id": visit.external_id,
            "reason": visit.reason, "created_at": visit.created_at}


@group.command("list")
@click.option("--patient", "username", default=None, help="Only this patient's visits.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of the table.")
@reported
def list_(username: str | None, as_json: bool) -> None:
    """Visits, newest first: id, patient, external id, reason, opened."""
    patient = accounts.get_user(username) if username else None
    emit([_visit(v) for v in accounts.list_visits(patient)], ["id", "patient", "external_id", "reason", "created_at"],
         as_json, "No visits.")


@group.command("show")
@click.argument("visit")
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(visit: str, as_json: bool) -> None:
    """One visit, by its id or external id."""
    show(_visit(accounts.get_visit(visit)), as_json)
