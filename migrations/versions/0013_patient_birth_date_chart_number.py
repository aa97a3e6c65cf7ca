"""patient birth date and chart number: what tells two patients of the same name apart

Two nullable columns on users, both shown and searched by the providers' patient list
(`/patients`): `birth_date` and `chart_number`. A chart number is unique within its clinic
(a unique index on account_id, chart_number; patients without one, NULL, never collide) and two
clinics may use the same one. A search by date of birth reads that day's patients through
(account_id, birth_date) instead of every patient of the clinic.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('birth_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('chart_number', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_users_chart_number', ['account_id', 'chart_number'], unique=True)
        batch_op.create_index('ix_users_birth_date', ['account_id', 'birth_date'], unique=False)


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_birth_date')
        batch_op.drop_index('ix_users_chart_number')
        batch_op.drop_column('chart_number')
        batch_op.drop_column('birth_date')
