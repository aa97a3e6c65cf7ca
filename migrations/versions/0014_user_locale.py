"""user locale: the pages' language a user chose

One nullable column on users, `locale` ("en", "es"): the language the pages speak to that
user once signed in, whatever browser they use. NULL (every existing user) means the
browser's Accept-Language, as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locale')
