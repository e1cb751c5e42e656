"""PostgreSQL: an index for the customer list's contact orders (never contacted first or last)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 22:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    # PostgreSQL only (models.customer): SQLite's ascending indexes put NULLs first already.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index('ix_customers_contact_nulls_first', 'customers',
                    [sa.text('last_contact_at ASC NULLS FIRST'), 'id'], unique=False)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_customers_contact_nulls_first', table_name='customers')
