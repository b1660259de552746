"""The log's read order (tx_id) is set by the database, whatever the inserting role sends.

A role that may INSERT could otherwise write an event with tx_id 1: below every reader's
checkpoint, so no live projection would ever apply it. The trigger recomputes it the way the
append does: the inserting transaction's id, or later if the stream or the business case
(correlation id) already holds a later one, so a case is read in causal order.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION eventstore_set_tx_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.tx_id := GREATEST(
        pg_current_xact_id()::text::bigint,
        COALESCE((SELECT e.tx_id FROM eventstore_event e WHERE e.stream_id = NEW.stream_id
                  ORDER BY e.stream_version DESC LIMIT 1), 0),
        COALESCE((SELECT max(e.tx_id) FROM eventstore_event e
                  WHERE e.correlation_id = NULLIF(NEW.correlation_id, '')), 0));
    RETURN NEW;
END;
$$;
CREATE TRIGGER eventstore_event_set_tx_id BEFORE INSERT ON eventstore_event
    FOR EACH ROW EXECUTE FUNCTION eventstore_set_tx_id();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS eventstore_event_set_tx_id ON eventstore_event;
DROP FUNCTION IF EXISTS eventstore_set_tx_id();
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
