"""An index for the recycle clocks: each customer's latest effective contact

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 04:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_notes_effective', 'customer_notes',
                    ['customer_id', 'kind', 'contacted_at', 'created_at', 'deleted_at'], unique=False,
                    sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))


def downgrade():
    op.drop_index('ix_customer_notes_effective', table_name='customer_notes')
