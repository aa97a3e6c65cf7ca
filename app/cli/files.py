"""`chartbox files …`: integrity checks, debris clean-up, purging old deletions, restore, reindex."""

import click
from flask.cli import AppGroup

from app.api import params
from app.cli.errors import reported
from app.cli.output import progress_bar
from app.services import digests, files, integrity, search_index
from app.services.audit import Origin

group = AppGroup("files", help="Stored files: check, clean up debris, purge old deletions, restore, reindex.")



def _hours(hours: float) -> str:
    return f"{hours:g} h"


def _age(item: integrity.DebrisItem, now) -> str:
    seconds = item.age(now).total_seconds()
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _describe(item: integrity.DebrisItem, now, note: str = "") -> str:
    return f"{item.kind}: {item.ref} ({item.size:,} bytes, {_age(item, now)} old{'; ' + note if note else ''})"


@group.command("check")
@click.option("--deep", is_flag=True, help="Also re-hash every blob against its sha256.")
@reported
def check(deep: bool) -> None:
    """Find missing blobs and size/checksum mismatches (exit 1 if any); list debris apart."""
    report = integrity.check(deep=deep, progress=progress_bar("Checking files"))
    for title, items in (("missing", report.missing), ("size mismatch", report.size_mismatch),
                         ("checksum mismatch", report.checksum_mismatch)):
        for item in items:
            click.echo(f"{title}: {item}")
    grace, removable = report.grace_hours, report.removable
    for piece in report.debris:
        past = integrity.is_past_grace(piece, grace, report.now)
        when = "past the grace period" if past else f"younger than {_hours(grace)}, kept"
        click.echo(_describe(piece, report.now, when))
    if report.debris:
        total = sum(d.size for d in report.debris)
        click.echo(f"Debris (not a failure): {len(report.debris)} item(s), {total:,} bytes; "
                   f"{len(removable)} older than the {_hours(grace)} grace period (`files cleanup` removes those).")
    else:
        click.echo("Debris: none.")
    if report.ok:
        click.echo(f"OK: {report.checked} files checked{' deeply' if deep else ''}, no problems.")
        return
    raise click.ClickException(f"{report.problems} problem(s) found in {report.checked} files.")


@group.command("cleanup")
@click.option("--grace-hours", "grace", type=click.FloatRange(min=0), default=None,
              help="Only remove debris older than this many hours (default ORPHAN_GRACE_HOURS); 0 removes all.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def cleanup(grace: float | None, dry_run: bool, yes: bool) -> None:
    """Remove debris (orphan blobs, temp spool files, partial writes, stale renditions) past the grace period."""
    hours = integrity.grace_hours(grace)
    if not dry_run and not yes:
        click.confirm(f"Permanently remove orphan blobs, temp spool files, partial writes and stale renditions "
                      f"older than {_hours(hours)}?", abort=True)
    result = integrity.cleanup(hours, dry_run=dry_run, progress=progress_bar("Cleaning up"))
    now = result.now
    verb = "would remove" if dry_run else "removed"
    for item in result.removed:
        click.echo(f"{verb} {_describe(item, now)}")
    for item in result.kept:
        click.echo(f"kept (younger than {_hours(hours)}) {_describe(item, now)}")
    for item, reason in result.failed:
        click.echo(f"could not remove {_describe(item, now)}: {reason}")
    click.echo(f"{len(result.removed)} debris item(s) {'would be ' if dry_run else ''}removed "
               f"({result.removed_bytes:,} bytes), {len(result.kept)} kept (younger than {_hours(hours)}).")
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} debris item(s) could not be removed.")


@group.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=0), default=None,
              help="Purge files deleted more than this many days ago (default TRASH_RETENTION_DAYS).")
@click.option("--dry-run", is_flag=True, help="Only say what would be purged.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def purge(days: int | None, dry_run: bool, yes: bool) -> None:
    """Purge the bytes of old deletions for good (the rows stay, marked purged)."""
    days = integrity.retention_days(days)
    if not dry_run and not yes:
        click.confirm(f"Permanently remove the bytes of files deleted more than {days} days ago?", abort=True)
    result = integrity.purge(days, dry_run=dry_run, progress=progress_bar("Purging"))
    verb = "would purge" if dry_run else "purged"
    for item in result.purged:
        click.echo(f"{verb}: {item}")
    click.echo(f"{len(result.purged)} file(s) {'would be ' if dry_run else ''}purged.")


@group.command("restore")
@click.argument("file_id")
@reported
def restore(file_id: str) -> None:
    """Undo the deletion of FILE_ID (its UUID or integer id)."""
    row = files.restore(Origin.cli(), params.row_id(file_id) or file_id)
    click.echo(f"Restored {row.public_id} ({row.name}).")


@group.command("backfill-sha1")
@reported
def backfill_sha1() -> None:
    """Record the SHA-1 (FHIR's Attachment.hash) of files stored before uploads computed it."""
    result = digests.backfill_sha1(progress=progress_bar("Hashing files"))
    for public_id in result.missing:
        click.echo(f"missing blob, skipped: {public_id}")
    for public_id in result.damaged:
        click.echo(f"damaged (differs from its sha256), skipped: {public_id}")
    click.echo(f"{result.filled} file(s) given a SHA-1.")
    if result.missing or result.damaged:
        raise click.ClickException(f"{len(result.missing) + len(result.damaged)} file(s) could not be hashed; "
                                   "`chartbox files check` says more.")


@group.command("reindex")
@reported
def reindex() -> None:
    """Extract the text of stored files that have none yet, so search finds them by their words."""
    result = search_index.reindex(progress=progress_bar("Reading files"))
    click.echo(f"{len(result.indexed)} file(s) indexed, {len(result.without_text)} without text"
               f"{f', {len(result.unreadable)} unreadable (see the log)' if result.unreadable else ''}.")
    if result.unreadable:
        raise click.ClickException(f"{len(result.unreadable)} file(s) could not be read from storage.")
