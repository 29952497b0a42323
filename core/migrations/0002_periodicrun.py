from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_vector_extension'),
    ]

    operations = [
        migrations.CreateModel(
            name='PeriodicRun',
            fields=[
                ('name', models.CharField(max_length=80, primary_key=True, serialize=False)),
                ('last_started_at', models.DateTimeField(blank=True, null=True)),
                ('last_finished_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, default='', max_length=500)),
            ],
        ),
    ]
