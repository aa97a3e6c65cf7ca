"""file texts: the words inside each file, and the database's full-text index over them

The Documents toolbar finds a file by a word inside it (a PDF's text, a note, a Word document's
or a workbook's cells). `file_texts` holds each file's extracted text (one row per file that has
any; removed with the file's row, and when its bytes are purged). The index is the database's
own: on SQLite an FTS5 table over it (external content: the text is stored once) kept in step by
triggers; on PostgreSQL a GIN index on to_tsvector('simple', body) ('simple': no stemming or
stop words, so names and words in any language match as typed), punctuation made blank first
(PostgreSQL's parser keeps "13.9" or an address whole, FTS5 splits them: both now split). Existing files get their text
from `chartbox files reindex`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 01:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# The same statements as app/models/files.py (SQLITE_SEARCH_DDL, POSTGRES_SEARCH_DDL): migrations
# never import app code.
SQLITE = (
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
POSTGRESQL = (
    "CREATE INDEX ix_file_texts_search ON file_texts USING gin "
    "(to_tsvector('simple'::regconfig, regexp_replace(body, '[[:punct:]]', ' ', 'g')))",
)


def upgrade():
    op.create_table(
        'file_texts',
        sa.Column('file_id', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_file_texts_file_id_stored_files'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('file_id', name=op.f('pk_file_texts')),
    )
    dialect = op.get_bind().dialect.name
    for statement in SQLITE if dialect == 'sqlite' else POSTGRESQL if dialect == 'postgresql' else ():
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TABLE IF EXISTS file_texts_fts")  # its shadow tables go with it
    op.drop_table('file_texts')  # the triggers and the GIN index go with it
