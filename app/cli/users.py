"""`chartbox users …`"""
import sys

import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import emit, show
from app.i18n import LOCALES
from app.models import Role
from app.services import accounts

group = AppGroup("users", help="Patients, providers and admins.")


@group.command("create")
@click.option("--account", "account_code", required=True, help="The clinic's account code.")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.option("--email", default=None)
@click.option("--birth-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="A patient's date of birth, YYYY-MM-DD.")
@click.option("--chart-number", default=None, help="A patient's chart number, unique in the clinic.")
@click.option("--locale", type=click.Choice(LOCALES), default=None,
              help="The pages' language for the user (default: their browser's).")
@click.option("--password-stdin", is_flag=True, help="Read the sign-in password from standard input.")
@reported
def create(account_code, role, username, full_name, email, birth_date, chart_number, locale, password_stdin) -> None:
    """Create a user; prints only the new user's id."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("No password was given on standard input.")
    account = accounts.get_account(account_code)
    user = accounts.create_user(account, Role(role), username, full_name, email, password,
                                birth_date=birth_date.date() if birth_date else None, chart_number=chart_number,
                                locale=locale)
    click.echo(user.id)


@group.command("set-locale")
@click.argument("username")
@click.option("--locale", type=click.Choice(LOCALES), default=None,
              help="The pages' language; left out: the user's browser decides again.")
@reported
def set_locale(username: str, locale: str | None) -> None:
    """Set the language the pages speak to USERNAME once signed in."""
    accounts.set_locale(accounts.get_user(username), locale)
    click.echo(f"{username}: pages in {locale or 'the browser’s language'}.")


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


def _user(user) -> dict:
    return {"id": user.id, "username": user.username, "full_name": user.full_name, "role": user.role,
            "account": user.account.code, "email": user.email,
            "birth_date": user.birth_date.isoformat() if user.birth_date else None,
            "chart_number": user.chart_number, "locale": user.locale, "active": user.active,
            "created_at": user.created_at}


@group.command("list")
@click.option("--account", "account_code", default=None, help="Only this clinic's users.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None, help="Only this role.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of the table.")
@reported
def list_(account_code: str | None, role: str | None, as_json: bool) -> None:
    """Users: id, username, name, date of birth, chart number, role, clinic, active."""
    account = accounts.get_account(account_code) if account_code else None
    rows = [_user(u) for u in accounts.list_users(account, Role(role) if role else None)]
    emit(rows, ["id", "username", "full_name", "birth_date", "chart_number", "role", "account", "active"],
         as_json, "No users.")


@group.command("show")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(username: str, as_json: bool) -> None:
    """One user, with their open sessions and live API tokens counted."""
    from app.services import sessions

    user = accounts.get_user(username)
    live_tokens = sum(1 for t in accounts.list_tokens() if t.user_id == user.id and accounts.token_state(t) == "active")
    show(_user(user) | {"open_sessions": len(sessions.list_sessions(user, False)), "api_tokens": live_tokens},
         as_json)
