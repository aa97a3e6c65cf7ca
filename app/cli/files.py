"""`chartbox files …`: integrity checks, clean-up and restore."""
import sys

import click
from flask.cli import AppGroup

from app.api import params
from app.cli.errors import reported
from app.services import files, integrity
from app.services.audit import Origin

group = AppGroup("files", help="Stored files: check, clean up, restore.")


def _bar(label: str):
    def progress(items):
        items = list(items)
        with click.progressbar(items, label=label, file=sys.stderr) as bar:  # stdout stays the report
            yield from bar
    return progress


@group.command("check")
@click.option("--deep", is_flag=True, help="Also re-hash every blob against its sha256.")
@reported
def check(deep: bool) -> None:
    """Find missing blobs, size/checksum mismatches and orphan blobs; exit 1 if any."""
    report = integrity.check(deep=deep, progress=_bar("Checking files"))
    for title, items in (("missing", report.missing), ("size mismatch", report.size_mismatch),
                         ("checksum mismatch", report.checksum_mismatch), ("orphan blob", report.orphans)):
        for item in items:
            click.echo(f"{title}: {item}")
    if report.ok:
        click.echo(f"OK: {report.checked} files checked{' deeply' if deep else ''}, no problems.")
        return
    problems = len(report.missing) + len(report.size_mismatch) + len(report.checksum_mismatch) + len(report.orphans)
    raise click.ClickException(f"{problems} problem(s) found in {report.checked} files.")


@group.command("cleanup")
@click.option("--older-than", "days", type=click.IntRange(min=0), required=True,
              help="Purge files deleted more than this many days ago.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def cleanup(days: int, dry_run: bool, yes: bool) -> None:
    """Purge the bytes of old deletions and remove orphan blobs."""
    if not dry_run and not yes:
        click.confirm(f"Permanently remove files deleted more than {days} days ago, and orphan blobs?", abort=True)
    result = integrity.cleanup(days, dry_run=dry_run, progress=_bar("Purging"))
    verb = "would purge" if dry_run else "purged"
    for item in result.purged:
        click.echo(f"{verb}: {item}")
    for key in result.orphans_removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} orphan: {key}")
    click.echo(f"{len(result.purged)} file(s) {verb}, {len(result.orphans_removed)} orphan blob(s)"
               f" {'would be ' if dry_run else ''}removed.")


@group.command("restore")
@click.argument("file_id")
@reported
def restore(file_id: str) -> None:
    """Undo the deletion of FILE_ID (its UUID or integer id)."""
    row = files.restore(Origin.cli(), params.row_id(file_id) or file_id)
    click.echo(f"Restored {row.public_id} ({row.name}).")
