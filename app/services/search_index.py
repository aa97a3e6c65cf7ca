"""Search: a file's text in the index, and the condition that finds files by their words.

Each file's text (text_extract.py) is a `file_texts` row; the database indexes it itself: SQLite
through the FTS5 table `file_texts_fts` (kept in step by triggers), PostgreSQL through a GIN
index on to_tsvector('simple', body) (punctuation made blank). `matches` hides the difference: a file matches when its
name holds every word (a case-insensitive substring) or its text does (the last word as a
prefix, as people type). What a user types is never handed to either query language: it is cut
into words of letters and digits, which are then quoted. A purged file's text goes with its
bytes (`remove_texts`); `reindex` gives existing files their text.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import ColumnElement, and_, delete, exists, or_, select

from app.extensions import db
from app.models import FileText, StoredFile
from app.services import spool, text_extract, validation
from app.storage import StorageError, get_storage

log = logging.getLogger(__name__)

#: At most this much of a query is read, and this many words of it used: a pasted page of
#: text must not become a query of a thousand terms.
MAX_QUERY_CHARS = 200
MAX_WORDS = 8
MAX_WORD_CHARS = 64
_WORD = re.compile(r"[^\W_]+")
#: The types whose text is extracted (the others, images, have none).
TEXT_TYPES = frozenset({validation.PDF, validation.TEXT, validation.CSV, validation.DOCX, validation.XLSX})
_FTS = sa.table("file_texts_fts", sa.column("rowid"), sa.column("file_texts_fts"))
_SIMPLE: sa.ColumnClause[str] = sa.literal_column("'simple'::regconfig", sa.String)
#: The body as the GIN index reads it (the same expression, literally, or the index is not used):
#: punctuation made blank, so PostgreSQL splits "13.9" into 13 and 9 as FTS5 does.
_PG_WORDS = sa.func.regexp_replace(FileText.body, sa.literal_column("'[[:punct:]]'"), sa.literal_column("' '"),
                                   sa.literal_column("'g'"))

Progress = Callable[[Iterable], Iterator]


def words(query: str | None) -> tuple[str, ...]:
    """The words of a user's query, lower-case, in order, without repeats: letters and digits
    only (quotes, operators, NUL and the like separate words), at most MAX_WORDS."""
    text = unicodedata.normalize("NFKC", (query or "")[:MAX_QUERY_CHARS]).casefold()
    found: list[str] = []
    for word in _WORD.findall(text):
        word = word[:MAX_WORD_CHARS]
        if word not in found:
            found.append(word)
        if len(found) == MAX_WORDS:
            break
    return tuple(found)


def fts5_query(terms: tuple[str, ...]) -> str:
    """SQLite FTS5: every word as a quoted string (AND), the last one a prefix."""
    return " ".join(f'"{w}"' + ("*" if i == len(terms) - 1 else "") for i, w in enumerate(terms))


def tsquery(terms: tuple[str, ...]) -> str:
    """PostgreSQL to_tsquery: every word quoted, joined with &, the last one a prefix."""
    return " & ".join(f"'{w}'" + (":*" if i == len(terms) - 1 else "") for i, w in enumerate(terms))


def matches(terms: tuple[str, ...]) -> ColumnElement[bool]:
    """The condition on StoredFile of a search for `terms` (see words): its name holds every
    word, or its text does. `terms` must not be empty."""
    if not terms:
        raise ValueError("a search needs at least one word")
    by_name = and_(*(StoredFile.name.ilike(f"%{w}%") for w in terms))
    if db.session.get_bind().dialect.name == "postgresql":
        found = sa.func.to_tsvector(_SIMPLE, _PG_WORDS).op("@@")(sa.func.to_tsquery(_SIMPLE, tsquery(terms)))
        by_text = StoredFile.id.in_(select(FileText.file_id).where(found))
    else:
        by_text = StoredFile.id.in_(select(_FTS.c.rowid).where(_FTS.c.file_texts_fts.op("MATCH")(fts5_query(terms))))
    return or_(by_name, by_text)


def add_text(row: StoredFile, text: str) -> None:
    """Index `text` as the words inside `row` (flushed with the session; the row must have
    its id). Replaces what it had."""
    existing = db.session.get(FileText, row.id)
    if existing is not None:
        existing.body = text
    else:
        db.session.add(FileText(file_id=row.id, body=text))


def remove_texts(file_ids: Iterable[int]) -> None:
    """Forget the text of these files (their bytes are gone); not committed."""
    ids = list(file_ids)
    if ids:
        db.session.execute(delete(FileText).where(FileText.file_id.in_(ids)))


@dataclass
class Reindexed:
    """What `reindex` did: files given text, files without any, files it could not read."""

    indexed: list[str] = field(default_factory=list)
    without_text: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _each(items: Iterable) -> Iterator:
    yield from items


def reindex(progress: Progress = _each) -> Reindexed:
    """Extract and index the text of every stored file that has none yet (files from before
    search, or whose extraction gave up); one commit per file, so a run cut short keeps what
    it did and the next one goes on. Purged files are skipped (no bytes).

    A file whose text cannot be read is counted (without_text), never an error; one whose
    bytes cannot be read from storage is listed as unreadable (and logged).
    """
    config = current_app.config
    limits = validation.Limits.from_config(config)
    storage = get_storage()
    due = list(db.session.execute(
        select(StoredFile.id, StoredFile.public_id, StoredFile.storage_key, StoredFile.media_type)
        .where(StoredFile.purged_at.is_(None), StoredFile.media_type.in_(TEXT_TYPES),
               ~exists().where(FileText.file_id == StoredFile.id))
        .order_by(StoredFile.id)))
    result = Reindexed()
    for file_id, public_id, key, media_type in progress(due):
        try:
            text = _extract_stored(storage, key, media_type, limits, config["SEARCH_TEXT_MAX_CHARS"])
        except (StorageError, OSError) as exc:
            log.warning("reindex: cannot read the bytes of %s: %s", public_id, exc)
            result.unreadable.append(public_id)
            continue
        if not text:
            result.without_text.append(public_id)
            continue
        db.session.add(FileText(file_id=file_id, body=text))
        db.session.commit()
        result.indexed.append(public_id)
    return result


def _extract_stored(storage, key: str, media_type: str, limits: validation.Limits, max_chars: int) -> str | None:
    """The text of a stored blob, read through a temp copy (the decoder children need a path)."""
    os.makedirs(spool.folder(), exist_ok=True)
    fd, path = tempfile.mkstemp(dir=spool.folder(), prefix=spool.PREFIX, suffix=spool.SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out, storage.open(key) as source:
            shutil.copyfileobj(source, out, 1024 * 1024)
        return text_extract.extract(path, media_type, limits, limits.budget(), max_chars)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
