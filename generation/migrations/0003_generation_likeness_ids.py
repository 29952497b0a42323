import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0002_generation_timings'),
    ]

    operations = [
        migrations.AddField(
            model_name='generation',
            name='likeness_ids',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), blank=True, default=list, size=None),
        ),
        # Jobs made before likeness lineage carried only the cameos they named.
        migrations.RunSQL(
            "UPDATE generation_generation SET likeness_ids = cameo_ids WHERE likeness_ids = '{}'",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='generation',
            index=django.contrib.postgres.indexes.GinIndex(condition=models.Q(('status__in', ['queued', 'running'])), fields=['likeness_ids'], name='generation_likeness_gin'),
        ),
    ]
