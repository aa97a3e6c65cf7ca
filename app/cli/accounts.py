"""`chartbox accounts …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.services import accounts

group = AppGroup("accounts", help="Clinics (accounts).")


@group.command("create")
@click.argument("code")
@click.option("--name", required=True, help="The clinic's display name.")
@reported
def create(code: str, name: str) -> None:
    """Create a clinic with account CODE."""
    account = accounts.create_account(code, name)
    click.echo(account.code)
