"""patient directory: an index in the directory's own order (clinic, role, name, id)

The providers' patient list (`/patients`, with or without a search) selects one clinic's
patients ordered by name and takes a page; with this index the database walks them in that
order and stops after the page, instead of reading every patient of the clinic and sorting.
tests/test_query_plans.py checks the plan on PostgreSQL and SQLite.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_directory', ['account_id', 'role', 'full_name', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_directory')
