"""The log's read order (tx_id) is the database's to keep, whatever the inserting role sends.

A role that may INSERT could otherwise write an event with tx_id 1 (below every reader's checkpoint:
no live projection would ever apply it) or 2^62 (no reader would reach it for ages). A legitimate
tx_id is the inserting transaction's id, or a later one its stream or business case already holds,
and that one has committed; so the trigger keeps the value within [own id, max(own id, the
snapshot's xmax - 1)]. It changes no value the append computes, and costs no lookup.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION eventstore_keep_tx_id() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    own bigint := pg_current_xact_id()::text::bigint;
    newest bigint := GREATEST(own, pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1);
BEGIN
    NEW.tx_id := GREATEST(own, LEAST(COALESCE(NEW.tx_id, own), newest));
    RETURN NEW;
END;
$$;
CREATE TRIGGER eventstore_event_keep_tx_id BEFORE INSERT ON eventstore_event
    FOR EACH ROW EXECUTE FUNCTION eventstore_keep_tx_id();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS eventstore_event_keep_tx_id ON eventstore_event;
DROP FUNCTION IF EXISTS eventstore_keep_tx_id();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("eventstore", "0005_projection_skips")]
    operations = [migrations.RunPython(forward, backward)]
