"""Each customer's tag ids in one column, kept by triggers, for the tag counts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:45:00

customers.tag_key holds the ids of the customer's tags, ascending, comma-separated
('' for none). Triggers on customer_tags keep it: every path that changes a
customer's tags (the form, import, merge, tag merge and deletion, restore, raw SQL)
goes through that table. The list's per-tag counts then group the matching
customers by tag_key (one pass over the filter's covering index) instead of
looking up every matching customer's tags. The two covering indexes of the list's
stage and importance filters get the column at their end.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_SQLITE_KEY = ("coalesce((SELECT group_concat(tag_id, ',') FROM "
               "(SELECT tag_id FROM customer_tags WHERE customer_id = {row}.customer_id ORDER BY tag_id)), '')")

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER customer_tags_key_insert AFTER INSERT ON customer_tags BEGIN
        UPDATE customers SET tag_key = {_SQLITE_KEY.format(row='NEW')} WHERE id = NEW.customer_id;
    END""",
    f"""CREATE TRIGGER customer_tags_key_delete AFTER DELETE ON customer_tags BEGIN
        UPDATE customers SET tag_key = {_SQLITE_KEY.format(row='OLD')} WHERE id = OLD.customer_id;
    END""",
    f"""CREATE TRIGGER customer_tags_key_update AFTER UPDATE ON customer_tags BEGIN
        UPDATE customers SET tag_key = {_SQLITE_KEY.format(row='OLD')} WHERE id = OLD.customer_id;
        UPDATE customers SET tag_key = {_SQLITE_KEY.format(row='NEW')} WHERE id = NEW.customer_id;
    END""",
]

# Once per statement (an import or a tag's deletion changes many rows at once): the
# customers' rows are locked first (in id order), and the keys read by the next
# statement, which takes a new snapshot under READ COMMITTED — so that of two
# transactions tagging the same customer at once, the second to commit sees the
# first's tags.
POSTGRESQL_TRIGGERS = """
CREATE FUNCTION customer_tag_keys(customers_changed integer[]) RETURNS void AS $$
BEGIN
    PERFORM 1 FROM customers WHERE id = ANY(customers_changed) ORDER BY id FOR UPDATE;
    UPDATE customers SET tag_key = coalesce(
        (SELECT string_agg(tag_id::text, ',' ORDER BY tag_id) FROM customer_tags WHERE customer_id = customers.id), '')
    WHERE id = ANY(customers_changed);
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION customer_tags_added() RETURNS trigger AS $$
BEGIN
    PERFORM customer_tag_keys(ARRAY(SELECT DISTINCT customer_id FROM added));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION customer_tags_removed() RETURNS trigger AS $$
BEGIN
    PERFORM customer_tag_keys(ARRAY(SELECT DISTINCT customer_id FROM removed));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION customer_tags_changed() RETURNS trigger AS $$
BEGIN
    PERFORM customer_tag_keys(ARRAY(SELECT customer_id FROM removed UNION SELECT customer_id FROM added));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER customer_tags_key_insert AFTER INSERT ON customer_tags
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION customer_tags_added();
CREATE TRIGGER customer_tags_key_delete AFTER DELETE ON customer_tags
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION customer_tags_removed();
CREATE TRIGGER customer_tags_key_update AFTER UPDATE ON customer_tags
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION customer_tags_changed();
"""

_INDEXES = {"ix_customers_stage_archived_owner": "stage", "ix_customers_importance_archived_owner": "importance"}


def upgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tag_key', sa.Text(), server_default='', nullable=False))
        for name, first in _INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [first, 'archived_at', 'owner_id', 'tag_key'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE customers SET tag_key = keys.tag_key FROM "
                   "(SELECT customer_id, string_agg(tag_id::text, ',' ORDER BY tag_id) AS tag_key "
                   "FROM customer_tags GROUP BY customer_id) AS keys WHERE customers.id = keys.customer_id")
        op.execute(POSTGRESQL_TRIGGERS)
    else:
        op.execute("UPDATE customers SET tag_key = coalesce((SELECT group_concat(tag_id, ',') FROM "
                   "(SELECT tag_id FROM customer_tags WHERE customer_id = customers.id ORDER BY tag_id)), '') "
                   "WHERE id IN (SELECT customer_id FROM customer_tags)")
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER customer_tags_key_{name} ON customer_tags")
        for function in ("customer_tags_added()", "customer_tags_removed()", "customer_tags_changed()",
                         "customer_tag_keys(integer[])"):
            op.execute(f"DROP FUNCTION {function}")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER customer_tags_key_{name}")
    with op.batch_alter_table('customers', schema=None) as batch_op:
        for name, first in _INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [first, 'archived_at', 'owner_id'], unique=False)
        batch_op.drop_column('tag_key')
