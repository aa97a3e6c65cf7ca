"""explicit visibility of every file to its patient (replaces the `shared` flag)

Carried over: a patient's own uploads, documents and profile pictures are visible; a visit
attachment or consent added by staff is visible only if it was shared.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visible', sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE stored_files SET visible = CASE "
        "WHEN shared OR creator_id = patient_id OR category IN ('user_document', 'user_avatar') THEN TRUE "
        "ELSE FALSE END"
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.alter_column('visible', existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_index('ix_stored_files_shared_listing')
        batch_op.create_index('ix_stored_files_visible_listing', ['patient_id', 'visible', 'deleted_at'], unique=False)
        batch_op.drop_column('shared')


def downgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared', sa.Boolean(), nullable=True))
    # `shared` meant "a staff file released to the patient"; documents were visible without it.
    op.execute(
        "UPDATE stored_files SET shared = CASE "
        "WHEN visible AND category IN ('intake_attachment', 'user_consent') AND creator_id != patient_id "
        "THEN TRUE ELSE FALSE END"
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.alter_column('shared', existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_index('ix_stored_files_visible_listing')
        batch_op.create_index('ix_stored_files_shared_listing', ['patient_id', 'shared', 'deleted_at'], unique=False)
        batch_op.drop_column('visible')
