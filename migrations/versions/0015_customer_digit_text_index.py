"""An index of the customers whose name or company holds a digit

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 22:15:00

The customer list's text filter matches a name or company holding the text as
typed. A text with a digit in it (a phone number's end, mostly) can only be in a
name or company holding a digit: a few customers, which this partial index holds,
instead of a read of every customer's name and company.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customers_digit_text', 'customers', ['name', 'company'], unique=False,
                    sqlite_where=sa.text("name GLOB '*[0-9]*' OR company GLOB '*[0-9]*'"),
                    postgresql_where=sa.text("name ~ '[0-9]' OR company ~ '[0-9]'"))


def downgrade():
    op.drop_index('ix_customers_digit_text', table_name='customers')
