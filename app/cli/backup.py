"""`chartbox backup …`: consistent backups of the database and its blobs, their check, restore."""
from pathlib import Path

import click
from flask.cli import AppGroup

from app.cli.errors import reported
from app.cli.output import progress_bar
from app.services import backup

group = AppGroup("backup", help="Backups: create, verify, restore.")
FOLDER = click.Path(file_okay=False, path_type=Path)



def _failed(exc: backup.BackupError) -> click.ClickException:
    for problem in exc.problems:
        click.echo(f"problem: {problem}")
    return click.ClickException(exc.message)


def _summary(counts: dict[str, int]) -> str:
    return (f"{counts['accounts']} account(s), {counts['users']} user(s), {counts['stored_files']} file row(s), "
            f"{counts['blobs']} blob(s) ({counts['bytes']:,} bytes)")


@group.command("create")
@click.argument("folder", type=FOLDER)
@reported
def create(folder: Path) -> None:
    """Back up the database and its blobs into FOLDER (new or empty).

    The app keeps serving meanwhile; the snapshot and the blobs agree.
    """
    try:
        manifest = backup.create_backup(folder, progress=progress_bar("Copying blobs"))
    except backup.BackupError as exc:
        raise _failed(exc) from None
    click.echo(f"OK: backup of the {manifest.database['kind']} database in {folder}: {_summary(manifest.counts)}.")


@group.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reported
def verify(folder: Path) -> None:
    """Check the backup in FOLDER; exit 1 if anything is wrong.

    Checks the manifest, every blob's size and sha256, and the database snapshot.
    """
    result = backup.verify_backup(folder, progress=progress_bar("Checking blobs"))
    for problem in result.problems:
        click.echo(f"problem: {problem}")
    if not result.ok or result.manifest is None:
        raise click.ClickException(f"{len(result.problems)} problem(s) found in {folder}.")
    click.echo(f"OK: {folder} (taken {result.manifest.created_at}) is intact: the "
               f"{result.manifest.database['kind']} snapshot and {_summary(result.manifest.counts)}.")


@group.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even into an instance that holds data (it is replaced).")
@reported
def restore(folder: Path, force: bool) -> None:
    """Restore FOLDER into the configured database and storage.

    Stop the app first. Both must be empty, unless --force.
    """
    try:
        done = backup.restore_backup(folder, force=force, progress=progress_bar("Restoring blobs"))
    except backup.BackupError as exc:
        raise _failed(exc) from None
    click.echo(f"Restored {folder} (taken {done.manifest.created_at}) into the {done.database_kind} database "
               f"and {done.storage_backend} storage: {_summary(done.manifest.counts)}.")
    if done.foreign_blobs:
        click.echo(f"{done.foreign_blobs} blob(s) already in storage are not part of the backup; "
                   "`chartbox files check` lists them as orphans and `chartbox files cleanup` removes them.")
