"""Each author's notes of each kind in time order

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 23:40:00

The front desk's home page lists the calls and visits its user wrote today. With an
index of the author alone,
SQLite read today's notes of every author through the index of the time and kept the
user's: on a busy day, hundreds of notes for a handful. This index holds the author,
the kind and the time (and serves every lookup by author the old one served). The
kind comes before the time so that the index gives no order to a query without
the kind: the front desk's notes of one customer, newest first, keep walking
ix_customer_notes_customer_created instead of every note the front desk wrote.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_notes_author_kind_created', 'customer_notes',
                    ['author_id', 'kind', 'created_at'], unique=False)
    op.drop_index('ix_customer_notes_author_id', table_name='customer_notes')


def downgrade():
    op.create_index('ix_customer_notes_author_id', 'customer_notes', ['author_id'], unique=False)
    op.drop_index('ix_customer_notes_author_kind_created', table_name='customer_notes')
