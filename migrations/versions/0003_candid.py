"""candid images and encounter attachments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # Charge-capture files wait for their visit with no patient and no target yet.
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.alter_column('patient_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('target_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('attachment_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('description', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('charge_capture_external_id', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_stored_files_charge_capture', ['account_id', 'charge_capture_external_id'], unique=False)

    op.create_table('candid_images',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deactivated', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updating_user_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('file_type', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('coverage_id', sa.String(length=64), nullable=True),
    sa.Column('coverage_side', sa.String(length=8), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('patient_notes', sa.String(length=2000), nullable=True),
    sa.Column('file_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_candid_images_account_id_accounts')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_candid_images_file_id_stored_files')),
    sa.ForeignKeyConstraint(['patient_id'], ['users.id'], name=op.f('fk_candid_images_patient_id_users')),
    sa.ForeignKeyConstraint(['updating_user_id'], ['users.id'], name=op.f('fk_candid_images_updating_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_candid_images'))
    )
    with op.batch_alter_table('candid_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_candid_images_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_candid_images_search', ['account_id', 'deactivated', 'updated_at'], unique=False)
        # One active image per coverage side (deactivated ones do not count).
        batch_op.create_index('uq_candid_images_active_coverage', ['account_id', 'coverage_id', 'coverage_side'],
                              unique=True, sqlite_where=sa.text('NOT deactivated'),
                              postgresql_where=sa.text('NOT deactivated'))


def downgrade():
    with op.batch_alter_table('candid_images', schema=None) as batch_op:
        batch_op.drop_index('uq_candid_images_active_coverage')
        batch_op.drop_index('ix_candid_images_search')
        batch_op.drop_index(batch_op.f('ix_candid_images_patient_id'))

    op.drop_table('candid_images')
    # Waiting charge-capture files have no chart to fall back to; refuse rather than lose them.
    waiting = op.get_bind().execute(sa.text("SELECT count(*) FROM stored_files WHERE patient_id IS NULL")).scalar()
    if waiting:
        raise RuntimeError(f"{waiting} Candid charge-capture file(s) still wait for their visit; "
                           "create those visits or purge the files before downgrading.")
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_files_charge_capture')
        batch_op.drop_column('charge_capture_external_id')
        batch_op.drop_column('description')
        batch_op.drop_column('attachment_type')
        batch_op.alter_column('target_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('patient_id', existing_type=sa.Integer(), nullable=False)
