"""Create the minute sweep schedule idempotently, so `migrate` is all a deployment needs."""

from django.db import migrations

SWEEP = "todolists.sweep"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    # On the migrating connection (`migrate --database owner`), not the application's.
    # Schedule.name is not unique in django-q2: update_or_create keeps exactly one row. next_run is
    # left out of the defaults so a re-run does not reset it.
    Schedule.objects.using(schema_editor.connection.alias).update_or_create(
        name=SWEEP,
        defaults={"func": "todolists.tasks.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.using(schema_editor.connection.alias).filter(
        name=SWEEP
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("todolists", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
