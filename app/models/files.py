"""StoredFile: one uploaded file's metadata; the bytes live in storage under storage_key."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, BigInteger, ForeignKey, Index, String, Text, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.accounts import Account, User
from app.models.base import UTCDateTime, new_uuid, utcnow
from app.models.enums import Category, TargetType
from app.models.visits import Visit


class StoredFile(Model):
    __tablename__ = "stored_files"
    __table_args__ = (
        Index("ix_stored_files_target_listing", "target_type", "target_id", "deleted_at", "created_at"),
        Index("ix_stored_files_visible_listing", "patient_id", "visible", "deleted_at"),
        # A chart's live files newest first, walked in order and stopped after the page (0012).
        Index("ix_stored_files_live_chart", "account_id", "target_type", "target_id", "created_at", "id",
              postgresql_where=text("deleted_at IS NULL"), sqlite_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # integer-addressed dialects use this
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    ext: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Hex SHA-1 of the same bytes, for FHIR's Attachment.hash; NULL for files stored before it
    # was recorded until `chartbox files backfill-sha1` fills it in.
    sha1: Mapped[str | None] = mapped_column(String(40))
    media_type: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    # The user or visit the file is attached to (by internal id, per target_type).
    # NULL while the file is held in its clinic for a visit not opened yet (see is_held).
    target_id: Mapped[int | None]
    # The patient whose chart holds the file (the target user, or the visit's patient); the
    # access rules and listings key on it, so it is stored rather than joined each time.
    # NULL while the file is held for its visit: such a file is staff-only (access.in_scope).
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Whether the patient whose chart holds it may see it: always for their own uploads; staff
    # uploads by category (files.VISIBLE_BY_DEFAULT), then as staff set it.
    visible: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # bytes removed for good
    storage_backend: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(200))
    page_count: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]

    account: Mapped[Account] = relationship(lazy="joined")
    creator: Mapped[User] = relationship(foreign_keys=[creator_id], lazy="joined")
    deleted_by: Mapped[User | None] = relationship(foreign_keys=[deleted_by_id])
    patient: Mapped[User | None] = relationship(foreign_keys=[patient_id])
    visit: Mapped[Visit | None] = relationship()

    @property
    def category_enum(self) -> Category:
        return Category(self.category)

    @property
    def target_type_enum(self) -> TargetType:
        return TargetType(self.target_type)

    @property
    def is_held(self) -> bool:
        """Held in its clinic for a visit not opened yet (no chart, staff only)."""
        return self.patient_id is None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_image(self) -> bool:
        return self.media_type in ("image/png", "image/jpeg", "image/heic")

    @property
    def is_pdf(self) -> bool:
        return self.media_type == "application/pdf"


class FileText(Model):
    """The words inside one stored file (extracted at upload; text_extract.py), for search.

    One row per file that has text; a file whose text could not be read has none. The search
    index beside it is the database's own: on SQLite the FTS5 table `file_texts_fts` (external
    content, kept in step by triggers), on PostgreSQL a GIN index on to_tsvector('simple', body)
    with punctuation made blank (so "13.9" holds the words 13 and 9, as FTS5 reads it).
    Both are made by migration 0015 and, for create_all, by the DDL below.
    """

    __tablename__ = "file_texts"

    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)


#: The database's search index over file_texts.body, as migration 0015 makes it (the same
#: statements, so create_all and the migrations build one schema). Not models: the migrations'
#: drift check skips these names (migrations/env.py SEARCH_INDEX_NAMES).
SQLITE_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE file_texts_fts USING fts5(body, content='file_texts', content_rowid='file_id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER file_texts_fts_insert AFTER INSERT ON file_texts BEGIN "
    "INSERT INTO file_texts_fts(rowid, body) VALUES (new.file_id, new.body); END",
    "CREATE TRIGGER file_texts_fts_delete AFTER DELETE ON file_texts BEGIN "
    "INSERT INTO file_texts_fts(file_texts_fts, rowid, body) VALUES ('delete', old.file_id, old.body); END",
    "CREATE TRIGGER file_texts_fts_update AFTER UPDATE ON file_texts BEGIN "
    "INSERT INTO file_texts_fts(file_texts_fts, rowid, body) VALUES ('delete', old.file_id, old.body); "
    "INSERT INTO file_texts_fts(rowid, body) VALUES (new.file_id, new.body); END",
)
POSTGRES_SEARCH_DDL = (
    "CREATE INDEX ix_file_texts_search ON file_texts USING gin "
    "(to_tsvector('simple'::regconfig, regexp_replace(body, '[[:punct:]]', ' ', 'g')))",
)
for _statement in SQLITE_SEARCH_DDL:
    event.listen(FileText.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in POSTGRES_SEARCH_DDL:
    event.listen(FileText.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
# drop_all: the FTS table goes first (its triggers go with file_texts; the GIN index too).
event.listen(FileText.__table__, "before_drop",
             DDL("DROP TABLE IF EXISTS file_texts_fts").execute_if(dialect="sqlite"))
