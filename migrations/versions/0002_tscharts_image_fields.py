"""tscharts image fields

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('tscharts_clinic', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('tscharts_station', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_stored_files_tscharts_patient', ['patient_id', 'image_type', 'created_at'], unique=False)
        batch_op.create_index('ix_stored_files_tscharts_clinic', ['account_id', 'tscharts_clinic', 'tscharts_station'], unique=False)
        batch_op.create_index('ix_stored_files_tscharts_station', ['account_id', 'tscharts_station'], unique=False)


def downgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_files_tscharts_station')
        batch_op.drop_index('ix_stored_files_tscharts_clinic')
        batch_op.drop_index('ix_stored_files_tscharts_patient')
        batch_op.drop_column('tscharts_station')
        batch_op.drop_column('tscharts_clinic')
        batch_op.drop_column('image_type')
