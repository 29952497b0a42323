from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cameo', '0003_protected_likenesses'),
    ]

    operations = [
        migrations.AddField(
            model_name='cameo',
            name='enrollment_sent_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        # Enrollments under way before the outbox were sent when their upload was stored.
        migrations.RunSQL(
            "UPDATE cameo_cameo SET enrollment_sent_at = created_at WHERE status = 'processing'",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
