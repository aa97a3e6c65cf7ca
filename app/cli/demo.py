"""`chartbox demo`: seed the demo clinic (what `make run` does on an empty database)."""
import os

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.errors import reported
from app.services import demo as demo_service


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing (and succeed) when data already exists.")
@with_appcontext
@reported
def demo(if_empty: bool) -> None:
    """Seed a demo clinic: a provider, three patients (two named alike), a visit, sample files and an API token."""
    if if_empty and not demo_service.is_empty():
        return
    seed = demo_service.seed_demo()
    lines = [f"Demo clinic seeded (account code: {seed.account_code}).", "Sign in at /login with:"]
    lines += [f"  {role:<8} {username:<10} password: {password}" for role, username, password in seed.logins]
    lines += [f"API token for {seed.token_user}: {seed.token}",
              f"Alice's patient id: {seed.patient_ids['alice']}; her visit: {seed.visit_id}"]
    path = os.path.join(current_app.instance_path, "demo-logins.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    click.echo("\n".join(lines))
    click.echo(f"(Saved to {path}.)")
