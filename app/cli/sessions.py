"""`chartbox sessions …`"""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import show
from app.services import accounts, sessions

group = AppGroup("sessions", help="Signed-in page sessions (server-side; revoking one signs it out).")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@group.command("list")
@click.option("--user", "username", default=None, help="Only this user's sessions.")
@click.option("--all", "include_ended", is_flag=True, help="Ended sessions too (their state says why).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of the table.")
@reported
def list_(username: str | None, include_ended: bool, as_json: bool) -> None:
    """Active sessions: id, user, created, last seen, ip, state (times UTC)."""
    user = accounts.get_user(username) if username else None
    rows = sessions.list_sessions(user, include_ended)
    if as_json:
        click.echo(json.dumps([{
            "id": row.id, "user": row.user.username, "user_id": row.user_id,
            "created_at": row.created_at.isoformat(), "last_seen_at": row.last_seen_at.isoformat(),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None, "end_reason": row.end_reason,
            "ip": row.ip, "user_agent": row.user_agent, "state": sessions.session_state(row),
        } for row in rows], indent=2))
        return
    if not rows:
        click.echo("No sessions.")
        return
    user_width = max(20, *(len(row.user.username) for row in rows))
    ip_width = max(15, *(len(row.ip or "-") for row in rows))
    click.echo(f"{'ID':>5}  {'USER':<{user_width}}  {'CREATED':<16}  {'LAST SEEN':<16}  {'IP':<{ip_width}}  STATE")
    for row in rows:
        click.echo(f"{row.id:>5}  {row.user.username:<{user_width}}  {_when(row.created_at):<16}  "
                   f"{_when(row.last_seen_at):<16}  {row.ip or '-':<{ip_width}}  {sessions.session_state(row)}")


@group.command("revoke")
@click.argument("session_id", type=int, required=False)
@click.option("--user", "username", default=None, help="With --all: whose sessions.")
@click.option("--all", "every", is_flag=True, help="Every open session of --user.")
@reported
def revoke(session_id: int | None, username: str | None, every: bool) -> None:
    """Sign out session SESSION_ID (the ID column of `sessions list`), or `--user NAME --all`."""
    if every:
        if session_id is not None or not username:
            raise click.ClickException("Give either a session ID, or --user USERNAME --all.")
        count = sessions.revoke_all(accounts.get_user(username))
        click.echo(f"{count} session(s) of {username} revoked.")
        return
    if session_id is None or username:
        raise click.ClickException("Give either a session ID, or --user USERNAME --all.")
    row = sessions.revoke(session_id)
    click.echo(f"Session {row.id} ({row.user.username}) revoked.")


@group.command("show")
@click.argument("session_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="A JSON object instead of lines.")
@reported
def show_(session_id: int, as_json: bool) -> None:
    """One session (by the ID column of sessions list), any state."""
    row = sessions.get_session(session_id)
    show({"id": row.id, "user": row.user.username, "created_at": row.created_at, "last_seen_at": row.last_seen_at,
          "ended_at": row.ended_at, "end_reason": row.end_reason, "ip": row.ip, "user_agent": row.user_agent,
          "state": sessions.session_state(row)}, as_json)
