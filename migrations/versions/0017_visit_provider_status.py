"""visit provider and status: who a visit is with, and whether it is open, completed or cancelled

Two columns on visits, shown wherever visits are listed (the patient's Visits tab, the chart's,
`chartbox visits list`): `provider_id` (the clinician, staff of the same clinic; NULL when not
known, as for every visit opened before this revision) and `status` (open, completed or
cancelled; existing visits read as open).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 01:40:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='open'))
        batch_op.create_foreign_key('fk_visits_provider_id_users', 'users', ['provider_id'], ['id'])


def downgrade():
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_constraint('fk_visits_provider_id_users', type_='foreignkey')
        batch_op.drop_column('status')
        batch_op.drop_column('provider_id')
