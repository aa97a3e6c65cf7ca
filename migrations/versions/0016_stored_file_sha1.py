"""stored file sha1: the digest FHIR's Attachment.hash names

A nullable hex SHA-1 beside sha256, computed at upload from the same bytes. Rows stored before
it stay NULL until `chartbox files backfill-sha1` reads their blobs through the storage (a
migration cannot: it has no storage, and reading every blob would hold the upgrade for as long
as the whole store takes to read).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 01:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sha1', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_column('sha1')
