"""Turn service errors into one clear CLI line and a non-zero exit."""
from __future__ import annotations

import functools

import click
from sqlalchemy.exc import SQLAlchemyError

from app.errors import ChartboxError
from app.storage import StorageError


def reported(fn):
    """Decorate a command so domain, storage and database errors print as `Error: …`, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ChartboxError, StorageError) as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from None
        except SQLAlchemyError as exc:  # e.g. an unreachable or not yet migrated database
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(
                f"Database error: {reason} (is it reachable and migrated? `flask db upgrade`)"
            ) from None

    return wrapper
