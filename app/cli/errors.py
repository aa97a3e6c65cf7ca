"""Turn service errors into one clear CLI line and a non-zero exit; audit every command."""
from __future__ import annotations

import functools
import logging
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from app.errors import ChartboxError
from app.storage import StorageError

log = logging.getLogger(__name__)
# Never into the audit trail: what these options carry is secret or bulky.
_UNRECORDED = {"password", "password_stdin", "token", "yes"}


def reported(fn):
    """Decorate a command so domain, storage and database errors print as `Error: …`, exit 1,
    and every run (succeeded or failed) leaves a COMMAND event in the audit trail."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        outcome = "failed"
        try:
            result = fn(*args, **kwargs)
            outcome = "ok"
            return result
        except (ChartboxError, StorageError) as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from None
        except SQLAlchemyError as exc:  # e.g. an unreachable or not yet migrated database
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(
                f"Database error: {reason} (is it reachable and migrated? `flask db upgrade`)"
            ) from None
        finally:
            _audit(outcome, kwargs)

    return wrapper


def _audit(outcome: str, params: dict[str, Any]) -> None:
    """Record the command (its name and options, never secrets); a failure to record is
    logged, not raised, so the command's own answer stands."""
    from app.models import Action
    from app.services import audit, transaction

    context = click.get_current_context(silent=True)
    if context is None:
        return
    safe = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
            for k, v in params.items() if k not in _UNRECORDED}
    try:
        transaction.abandon()  # whatever the command left open is not part of this record
        audit.record(Action.COMMAND, audit.Origin.cli(), actor=None, outcome=outcome,
                     command=context.command_path, options=safe)
        transaction.commit()
    except (SQLAlchemyError, ChartboxError) as exc:  # no database (yet): the command already said so
        log.warning("could not audit the command %s: %s", context.command_path, exc)
        try:
            transaction.abandon()
        except SQLAlchemyError:
            pass
