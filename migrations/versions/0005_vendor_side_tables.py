"""vendor columns leave stored_files for side tables owned by each dialect

tscharts' image type, clinic and station move to tscharts_images; Candid's attachment type,
description and charge-capture external id move to candid_attachments. Existing rows are
carried over (and back on downgrade).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tscharts_images',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('image_type', sa.String(length=16), nullable=False),
    sa.Column('clinic', sa.BigInteger(), nullable=True),
    sa.Column('station', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_tscharts_images_file_id_stored_files')),
    sa.PrimaryKeyConstraint('file_id', name=op.f('pk_tscharts_images'))
    )
    with op.batch_alter_table('tscharts_images', schema=None) as batch_op:
        batch_op.create_index('ix_tscharts_images_clinic', ['clinic', 'station'], unique=False)
        batch_op.create_index('ix_tscharts_images_station', ['station'], unique=False)
        batch_op.create_index('ix_tscharts_images_type', ['image_type'], unique=False)

    op.create_table('candid_attachments',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('attachment_type', sa.String(length=32), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=True),
    sa.Column('charge_capture_external_id', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_candid_attachments_account_id_accounts')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_candid_attachments_file_id_stored_files')),
    sa.PrimaryKeyConstraint('file_id', name=op.f('pk_candid_attachments'))
    )
    with op.batch_alter_table('candid_attachments', schema=None) as batch_op:
        batch_op.create_index('ix_candid_attachments_charge_capture', ['account_id', 'charge_capture_external_id'],
                              unique=False)

    op.execute(
        "INSERT INTO tscharts_images (file_id, image_type, clinic, station) "
        "SELECT id, image_type, tscharts_clinic, tscharts_station FROM stored_files WHERE image_type IS NOT NULL"
    )
    # Every file that came through a Candid attachment endpoint has a type; a waiting charge-capture
    # file always does too. OTHER stands in should a row carry details without one.
    op.execute(
        "INSERT INTO candid_attachments (file_id, account_id, attachment_type, description, charge_capture_external_id) "
        "SELECT id, account_id, COALESCE(attachment_type, 'OTHER'), description, charge_capture_external_id "
        "FROM stored_files WHERE attachment_type IS NOT NULL OR description IS NOT NULL "
        "OR charge_capture_external_id IS NOT NULL"
    )

    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_files_tscharts_patient')
        batch_op.drop_index('ix_stored_files_tscharts_clinic')
        batch_op.drop_index('ix_stored_files_tscharts_station')
        batch_op.drop_index('ix_stored_files_charge_capture')
        batch_op.drop_column('image_type')
        batch_op.drop_column('tscharts_clinic')
        batch_op.drop_column('tscharts_station')
        batch_op.drop_column('attachment_type')
        batch_op.drop_column('description')
        batch_op.drop_column('charge_capture_external_id')


def downgrade():
    long_type = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM candid_attachments WHERE length(attachment_type) > 16")).scalar()
    if long_type:
        raise RuntimeError(f"{long_type} Candid attachment(s) use a type longer than revision 0004 can store; "
                           "change their type before downgrading.")
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('tscharts_clinic', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('tscharts_station', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('attachment_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('description', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('charge_capture_external_id', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_stored_files_charge_capture', ['account_id', 'charge_capture_external_id'], unique=False)
        batch_op.create_index('ix_stored_files_tscharts_station', ['account_id', 'tscharts_station'], unique=False)
        batch_op.create_index('ix_stored_files_tscharts_clinic', ['account_id', 'tscharts_clinic', 'tscharts_station'],
                              unique=False)
        batch_op.create_index('ix_stored_files_tscharts_patient', ['patient_id', 'image_type', 'created_at'],
                              unique=False)
    op.execute(
        "UPDATE stored_files SET "
        "image_type = (SELECT t.image_type FROM tscharts_images t WHERE t.file_id = stored_files.id), "
        "tscharts_clinic = (SELECT t.clinic FROM tscharts_images t WHERE t.file_id = stored_files.id), "
        "tscharts_station = (SELECT t.station FROM tscharts_images t WHERE t.file_id = stored_files.id) "
        "WHERE id IN (SELECT file_id FROM tscharts_images)"
    )
    op.execute(
        "UPDATE stored_files SET "
        "attachment_type = (SELECT c.attachment_type FROM candid_attachments c WHERE c.file_id = stored_files.id), "
        "description = (SELECT c.description FROM candid_attachments c WHERE c.file_id = stored_files.id), "
        "charge_capture_external_id = (SELECT c.charge_capture_external_id FROM candid_attachments c "
        "WHERE c.file_id = stored_files.id) "
        "WHERE id IN (SELECT file_id FROM candid_attachments)"
    )
    with op.batch_alter_table('candid_attachments', schema=None) as batch_op:
        batch_op.drop_index('ix_candid_attachments_charge_capture')
    op.drop_table('candid_attachments')
    with op.batch_alter_table('tscharts_images', schema=None) as batch_op:
        batch_op.drop_index('ix_tscharts_images_type')
        batch_op.drop_index('ix_tscharts_images_station')
        batch_op.drop_index('ix_tscharts_images_clinic')
    op.drop_table('tscharts_images')
