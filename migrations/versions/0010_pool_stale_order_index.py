"""PostgreSQL: an index for the pool page's default order (no contact first)

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 11:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # PostgreSQL only (models.customer): SQLite's ascending indexes put NULLs first already.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index('ix_customers_pool_stale', 'customers',
                    [sa.text('last_contact_at ASC NULLS FIRST'), 'id'], unique=False,
                    postgresql_where=sa.text('owner_id IS NULL AND archived_at IS NULL'))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_customers_pool_stale', table_name='customers',
                  postgresql_where=sa.text('owner_id IS NULL AND archived_at IS NULL'))
