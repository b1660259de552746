from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("todolists", "0007_heartbeat_and_pause"),
    ]

    operations = [
        migrations.AddField(
            model_name="todoitem",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="todoitem",
            name="task_started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="pendingnudge",
            name="trigger_tx_id",
            field=models.BigIntegerField(
                default=0, help_text="The newest transaction id the queued task must see (0: any)."
            ),
        ),
    ]
