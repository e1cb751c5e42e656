"""Covering indexes for the customer list's stage and importance filters

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:30:00

ix_customers_stage_archived_owner replaces ix_customers_stage (its first column).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_stage')
        batch_op.create_index('ix_customers_stage_archived_owner',
                              ['stage', 'archived_at', 'owner_id'], unique=False)
        batch_op.create_index('ix_customers_importance_archived_owner',
                              ['importance', 'archived_at', 'owner_id'], unique=False)


def downgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_importance_archived_owner')
        batch_op.drop_index('ix_customers_stage_archived_owner')
        batch_op.create_index('ix_customers_stage', ['stage'], unique=False)
