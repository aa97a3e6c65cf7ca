"""`chartbox tokens …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import emit, show
from app.services import accounts

group = AppGroup("tokens", help="API tokens (one works in every API dialect).")


@group.command("create")
@click.argument("username")
@click.option("--name", default="", help="A label to tell tokens apart.")
@click.option("--expires-days", type=int, default=None, help="Expire after this many days.")
@reported
def create(username: str, name: str, expires_days: int | None) -> None:
    """Issue a token for USERNAME; prints only the token (it is not shown again)."""
    _, token = accounts.create_token(accounts.get_user(username), name, expires_days)
    click.echo(token)


def _token(row) -> dict:
    return {"id": row.id, "user": row.user.username, "name": row.name, "prefix": row.prefix,
            "state": accounts.token_state(row), "created": row.created_at,
            "expires": row.expires_at or "never", "last_used": row.last_used_at}


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array instead of the table.")
@reported
def list_(as_json: bool) -> None:
    """All tokens: id, user, name, prefix, state, created, expires (never the token itself)."""
    emit([_token(row) for row in accounts.list_tokens()],
         ["id", "user", "name", "prefix", "state", "created", "expires"], as_json, "No tokens.")


@group.command("show")
@click.argument("token_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(token_id: int, as_json: bool) -> None:
    """One token (by the ID column of tokens list)."""
    show(_token(accounts.get_token(token_id)), as_json)


@group.command("revoke")
@click.argument("token_id", type=int)
@reported
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID at once."""
    row = accounts.revoke_token(token_id)
    click.echo(f"Token {row.id} ({row.user.username}) revoked.")
