"""`chartbox accounts …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import emit, show
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


def _account(account) -> dict:
    return {"code": account.code, "name": account.name, "id": account.id, "created_at": account.created_at}


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of the table.")
@reported
def list_(as_json: bool) -> None:
    """Every clinic: code, name, id, created."""
    emit([_account(a) for a in accounts.list_accounts()], ["code", "name", "id", "created_at"], as_json,
         "No accounts.")


@group.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(code: str, as_json: bool) -> None:
    """One clinic, with how many users it has of each role."""
    account = accounts.get_account(code)
    users = accounts.list_users(account)
    counts = {f"{role}s": sum(1 for u in users if u.role == role) for role in ("patient", "provider", "admin")}
    show(_account(account) | counts, as_json)
