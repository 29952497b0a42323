import django.db.models.deletion
import pgvector.django.bit
import pgvector.django.indexes
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0004_generation_dispatched_at'),
        ('social', '0004_like_post_author_and_root'),
        ('core', '0001_vector_extension'),
    ]

    operations = [
        migrations.CreateModel(
            name='ContentFingerprint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at_ms', models.PositiveIntegerField()),
                ('region_pct', models.PositiveSmallIntegerField(default=100)),
                ('hash', pgvector.django.bit.BitField(length=256)),
                ('quality', models.PositiveSmallIntegerField()),
                ('post', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='fingerprints', to='social.post')),
            ],
            options={
                'indexes': [pgvector.django.indexes.HnswIndex(ef_construction=64, fields=['hash'], m=16, name='content_fingerprint_hnsw', opclasses=['bit_hamming_ops'])],
                'constraints': [models.UniqueConstraint(fields=('post', 'at_ms', 'region_pct'), name='content_fingerprint_frame_unique')],
            },
        ),
    ]
