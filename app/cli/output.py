"""How CLI listings look: an aligned table (the admin's default) or JSON (`--json`), one way."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import click


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str) -> None:
    """Print `rows` (dicts with at least `columns`) as a table whose columns fit their widest
    value, or as a JSON array of every field; `empty` when there is nothing to show."""
    if as_json:
        click.echo(json.dumps([{k: _json(v) for k, v in row.items()} for row in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(empty)
        return
    cells = [[_text(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def show(record: dict[str, Any], as_json: bool) -> None:
    """One record: `field: value` lines, or a JSON object."""
    if as_json:
        click.echo(json.dumps({k: _json(v) for k, v in record.items()}, indent=2, ensure_ascii=False))
        return
    width = max(len(k) for k in record)
    for key, value in record.items():
        click.echo(f"{key.replace('_', ' ') + ':':<{width + 2}}{_text(value)}")


def progress_bar(label: str) -> Callable[[Iterable], Iterator]:
    """A progress callback for long services (check, purge, backup): a bar on stderr, so
    stdout stays the report."""
    def progress(items: Iterable) -> Iterator:
        listed = list(items)
        with click.progressbar(listed, label=label, file=sys.stderr) as bar:
            yield from bar
    return progress
