"""Candid coverage sides are unique per patient, not per clinic

A clinic-wide index let one patient learn (and squat) another's coverage id; the partial unique
index now includes the patient.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ACTIVE = sa.text('NOT deactivated')


def upgrade():
    with op.batch_alter_table('candid_images', schema=None) as batch_op:
        batch_op.drop_index('uq_candid_images_active_coverage')
        batch_op.create_index('uq_candid_images_active_coverage',
                              ['account_id', 'patient_id', 'coverage_id', 'coverage_side'], unique=True,
                              sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)


def downgrade():
    clash = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM (SELECT account_id, coverage_id, coverage_side FROM candid_images "
        "WHERE NOT deactivated AND coverage_id IS NOT NULL "
        "GROUP BY account_id, coverage_id, coverage_side HAVING count(*) > 1) AS dup")).scalar()
    if clash:
        raise RuntimeError(f"{clash} coverage side(s) are held by active images of several patients; "
                           "deactivate all but one before downgrading.")
    with op.batch_alter_table('candid_images', schema=None) as batch_op:
        batch_op.drop_index('uq_candid_images_active_coverage')
        batch_op.create_index('uq_candid_images_active_coverage', ['account_id', 'coverage_id', 'coverage_side'],
                              unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)
