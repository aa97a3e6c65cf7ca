"""`chartbox users …`"""
import sys

import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.models import Role
from app.services import accounts

group = AppGroup("users", help="Patients, providers and admins.")


@group.command("create")
@click.option("--account", "account_code", required=True, help="The clinic's account code.")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.option("--email", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the sign-in password from standard input.")
@reported
def create(account_code, role, username, full_name, email, password_stdin) -> None:
    """Create a user; prints only the new user's id."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("No password was given on standard input.")
    account = accounts.get_account(account_code)
    user = accounts.create_user(account, Role(role), username, full_name, email, password)
    click.echo(user.id)
