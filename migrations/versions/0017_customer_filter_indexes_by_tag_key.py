"""The stage and importance filters' covering indexes ordered by tag_key

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 00:10:00

The list's per-tag counts group a filter's customers by tag_key. With the owner
before tag_key in these indexes, SQLite read the filter's entries in owner order
and sorted them all into a temporary tree to group them (20,000 entries for a
stage: 9.7 ms for a salesperson's scope). With tag_key right after the filter's
equalities the entries come grouped already: 4.4 ms. The owner is still in the
index, so a scope (own or pool) is tested without reading the customers' rows.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_FILTERS = ("stage", "importance")


def upgrade():
    for first in _FILTERS:
        op.drop_index(f'ix_customers_{first}_archived_owner', table_name='customers')
        op.create_index(f'ix_customers_{first}_archived_tags', 'customers',
                        [first, 'archived_at', 'tag_key', 'owner_id'], unique=False)


def downgrade():
    for first in _FILTERS:
        op.drop_index(f'ix_customers_{first}_archived_tags', table_name='customers')
        op.create_index(f'ix_customers_{first}_archived_owner', 'customers',
                        [first, 'archived_at', 'owner_id', 'tag_key'], unique=False)
