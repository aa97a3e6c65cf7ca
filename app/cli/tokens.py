"""`chartbox tokens …`"""
import click
from flask.cli import AppGroup

from app.cli.errors import reported
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


@group.command("list")
@reported
def list_() -> None:
    """All tokens: id, user, name, prefix, state, created, expires."""
    rows = accounts.list_tokens()
    if not rows:
        click.echo("No tokens.")
        return
    click.echo(f"{'ID':>4}  {'USER':<20} {'NAME':<16} {'PREFIX':<8}  {'STATE':<8} {'CREATED':<16} EXPIRES")
    for row in rows:
        expires = row.expires_at.strftime("%Y-%m-%d %H:%M") if row.expires_at else "never"
        click.echo(
            f"{row.id:>4}  {row.user.username:<20} {row.name[:16]:<16} {row.prefix:<8}  "
            f"{accounts.token_state(row):<8} {row.created_at:%Y-%m-%d %H:%M} {expires}"
        )


@group.command("revoke")
@click.argument("token_id", type=int)
@reported
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID at once."""
    row = accounts.revoke_token(token_id)
    click.echo(f"Token {row.id} ({row.user.username}) revoked.")
