"""`chartbox visits …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
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
