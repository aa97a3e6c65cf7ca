"""`chartbox audit …`: check the sealed audit trail, and export it."""
from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime

import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.services import audit

group = AppGroup("audit", help="The audit trail: verify its seal, export it.")


@group.command("verify")
@reported
def verify() -> None:
    """Recompute the hash chain; name the first changed, inserted or removed event (exit 1)."""
    result = audit.verify()
    if not result.ok:
        raise click.ClickException(f"{result.problem} ({result.checked} events before it are intact).")
    click.echo(f"OK: {result.checked} events, the chain is intact.")


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use an ISO date or time, e.g. 2026-12-01 or 2026-12-01T08:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@group.command("export")
@click.option("--since", help="Only events at or after this ISO date/time (UTC unless it says).")
@click.option("--patient", "patient_id", type=int, help="Only events about this patient (user id).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@reported
def export(since: str | None, patient_id: int | None, fmt: str) -> None:
    """Stream the events, oldest first, to standard output."""
    rows = audit.export(_moment(since), patient_id)
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=audit.EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "detail": json.dumps(row["detail"], ensure_ascii=False) if row["detail"] else ""})
