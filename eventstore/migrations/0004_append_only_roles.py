"""The trigger loses its TRUNCATE hatch: it stays as a second belt for the log's owner.

The protection itself is the application role's rights (see eventstore/roles.py): it may only
INSERT and SELECT. The owner and superusers can still disable the trigger or drop the table.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION eventstore_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("eventstore", "0003_read_order_by_transaction")]
    # Going back keeps the stricter function: unapplying must never reopen the hatch.
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
