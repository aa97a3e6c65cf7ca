"""chart listing: a partial index in the listing's own order (live files of one chart, newest first)

A chart's page (`GET /api_v3/files`, the Documents and chart pages) selects the live files of
one target in one clinic, ordered by created_at and id descending, and takes a page. The older
listing index (target_type, target_id, deleted_at, created_at) cannot give that order, so the
database read every live file of the chart and sorted it: a page of 50 in a 10,000-file chart
of a 1,000,000-file database cost 2.9x the same page in a 1,000-file database; with this index
the database walks the chart backwards and stops after the page (1.1x; BENCHMARKS.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 16:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_stored_files_live_chart', 'stored_files',
                    ['account_id', 'target_type', 'target_id', 'created_at', 'id'], unique=False,
                    postgresql_where=sa.text('deleted_at IS NULL'), sqlite_where=sa.text('deleted_at IS NULL'))


def downgrade():
    op.drop_index('ix_stored_files_live_chart', table_name='stored_files')
