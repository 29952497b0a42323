from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0003_generation_likeness_ids'),
    ]

    operations = [
        migrations.AddField(
            model_name='generation',
            name='dispatched_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        # Jobs queued before the outbox were enqueued when they were written.
        migrations.RunSQL(
            "UPDATE generation_generation SET dispatched_at = created_at WHERE status = 'queued'",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='generation',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['dispatched_at', 'id'], name='generation_outbox_idx'),
        ),
    ]
