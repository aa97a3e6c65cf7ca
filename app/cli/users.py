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


def _cut(cut: accounts.CredentialsCut) -> str:
    return f"{cut.sessions_ended} session(s) ended, {cut.tokens_revoked} API token(s) revoked"


@group.command("disable")
@click.argument("username")
@reported
def disable(username: str) -> None:
    """Disable USERNAME: ends their sessions and revokes their API tokens at once."""
    cut = accounts.disable_user(accounts.get_user(username))
    click.echo(f"{username} disabled: {_cut(cut)}.")


@group.command("enable")
@click.argument("username")
@reported
def enable(username: str) -> None:
    """Let a disabled USERNAME sign in again (their old tokens stay revoked)."""
    if accounts.enable_user(accounts.get_user(username)):
        click.echo(f"{username} enabled. Their old API tokens stay revoked; issue new ones with `tokens create`.")
    else:
        click.echo(f"{username} was not disabled.")


@group.command("set-password")
@click.argument("username")
@reported
def set_password(username: str) -> None:
    """Set USERNAME's password, read from standard input; ends their sessions and revokes their API tokens."""
    user = accounts.get_user(username)
    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("No password was given on standard input.")
    cut = accounts.set_password(user, password)
    click.echo(f"Password of {username} changed: {_cut(cut)}.")
