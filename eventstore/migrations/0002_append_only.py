"""On PostgreSQL the log refuses UPDATE, DELETE and TRUNCATE, even from a superuser's SQL session.

TRUNCATE is let through only where `eventstore.allow_truncate` is on: the test suite sets it on
its throwaway test database so Django can flush between tests.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION eventstore_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('eventstore.allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER eventstore_event_no_update_delete BEFORE UPDATE OR DELETE ON eventstore_event
    FOR EACH ROW EXECUTE FUNCTION eventstore_refuse_change();
CREATE TRIGGER eventstore_event_no_truncate BEFORE TRUNCATE ON eventstore_event
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS eventstore_event_no_truncate ON eventstore_event;
DROP TRIGGER IF EXISTS eventstore_event_no_update_delete ON eventstore_event;
DROP FUNCTION IF EXISTS eventstore_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("eventstore", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
