"""a sealed audit trail: sequence, outcome, patient, role, request id and a hash chain

Existing events are numbered in id order and chained, so `chartbox audit verify` covers them
too; their role and patient are filled in from the users and files they name.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:00:00.000000

"""
from types import SimpleNamespace

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    from app.models.base import UTCDateTime
    from app.services.audit import GENESIS, row_hash

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('actor_role', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('patient_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    op.create_table('audit_chain',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain'))
    )

    bind = op.get_bind()
    events = sa.table('audit_events', sa.column('id', sa.Integer), sa.column('created_at', UTCDateTime()),
                      sa.column('actor_id', sa.Integer), sa.column('account_id', sa.Integer),
                      sa.column('action', sa.String), sa.column('file_id', sa.Integer),
                      sa.column('channel', sa.String), sa.column('ip', sa.String),
                      sa.column('user_agent', sa.String), sa.column('detail', sa.JSON))
    roles = dict(bind.execute(sa.text("SELECT id, role FROM users")).all())
    patients = dict(bind.execute(sa.text("SELECT id, patient_id FROM stored_files")).all())
    prev, seq = GENESIS, 0
    for row in bind.execute(sa.select(events).order_by(events.c.id)).mappings():
        seq += 1
        event = SimpleNamespace(**row, seq=seq, actor_role=roles.get(row["actor_id"]),
                                patient_id=patients.get(row["file_id"]), outcome="ok", request_id=None,
                                prev_hash=prev)
        event.hash = row_hash(event)
        bind.execute(sa.text(
            "UPDATE audit_events SET seq = :seq, actor_role = :role, patient_id = :patient, outcome = 'ok', "
            "prev_hash = :prev, hash = :hash WHERE id = :id"),
            {"seq": seq, "role": event.actor_role, "patient": event.patient_id, "prev": prev, "hash": event.hash,
             "id": row["id"]})
        prev = event.hash
    bind.execute(sa.text("INSERT INTO audit_chain (id, seq, last_hash) VALUES (1, :seq, :hash)"),
                 {"seq": seq, "hash": prev})

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('outcome', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_seq'), ['seq'])
        batch_op.create_foreign_key(batch_op.f('fk_audit_events_patient_id_users'), 'users', ['patient_id'], ['id'])
        batch_op.drop_index('ix_audit_events_file_id')
        batch_op.create_index('ix_audit_events_file_history', ['file_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_events_patient_history', ['patient_id', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_patient_history')
        batch_op.drop_index('ix_audit_events_file_history')
        batch_op.create_index('ix_audit_events_file_id', ['file_id'], unique=False)
        batch_op.drop_constraint(batch_op.f('fk_audit_events_patient_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_audit_events_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('request_id')
        batch_op.drop_column('outcome')
        batch_op.drop_column('patient_id')
        batch_op.drop_column('actor_role')
        batch_op.drop_column('seq')
    op.drop_table('audit_chain')
