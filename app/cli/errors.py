"""Turn service errors into one clear CLI line and a non-zero exit."""
from __future__ import annotations

import functools

import click

from app.errors import ChartboxError
from app.storage import StorageError


def reported(fn):
    """Decorate a command so domain and storage errors print as `Error: …`, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ChartboxError, StorageError) as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from None

    return wrapper
