"""SQLite: each customer's scope and tags by id, apart from the customer's row

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 00:20:00

A tag filter's customers are found by id (customer_tags' index), and for each the
list needs whether it is archived, its owner (the scope) and its tag_key (the tag
counts). From the customers' table each of those lookups reads a page of whole
rows; this index holds only those four columns, some 30 bytes a customer, so the
7,000 customers of a common tag are read from a few hundred pages: the tag counts
13 -> 7 ms at 100,000 customers. PostgreSQL would read the table anyway (an
index-only scan needs pages that no recent write touched) and joins by hash.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # SQLite only (models.customer).
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index('ix_customers_id_scope', 'customers', ['id', 'archived_at', 'owner_id', 'tag_key'],
                    unique=False)


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index('ix_customers_id_scope', table_name='customers')
