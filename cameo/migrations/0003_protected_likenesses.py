# The registry of protected likenesses, seeded with the public figures the prompt rules used to
# hard-code (generation/moderation.py's PUBLIC_FIGURES), and Cameo.verified_as.

import cameo.models
import core.storage
import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
import pgvector.django.vector
from django.db import migrations, models


# Name, then the other spellings that count as naming them (frozen here: later changes go through
# the registry, not this file).
PUBLIC_FIGURES = [
    ("Donald Trump", ["Trump", "特朗普", "川普"]),
    ("Joe Biden", ["Biden", "拜登"]),
    ("Barack Obama", ["Obama", "奥巴马"]),
    ("Xi Jinping", ["习近平"]),
    ("Vladimir Putin", ["Putin", "普京"]),
    ("Elon Musk", ["Musk", "马斯克"]),
    ("Taylor Swift", ["泰勒·斯威夫特", "霉霉"]),
    ("Kim Kardashian", ["Kardashian"]),
    ("Cristiano Ronaldo", ["Ronaldo", "C罗"]),
    ("Lionel Messi", ["Messi", "梅西"]),
    ("Pope Francis", []),
    ("King Charles", ["Charles III"]),
    ("Emmanuel Macron", ["Macron", "马克龙"]),
    ("Narendra Modi", ["Modi", "莫迪"]),
    ("Volodymyr Zelensky", ["Zelensky", "Zelenskyy", "泽连斯基"]),
    ("Mark Zuckerberg", ["Zuckerberg", "扎克伯格"]),
    ("Jackie Chan", ["成龙"]),
    ("Beyoncé", ["Beyonce"]),
]


def seed_public_figures(apps, schema_editor):
    ProtectedLikeness = apps.get_model("cameo", "ProtectedLikeness")
    ProtectedLikeness.objects.bulk_create(
        [
            ProtectedLikeness(name=name, aliases=aliases, reason="public_figure")
            for name, aliases in PUBLIC_FIGURES
        ]
    )


class Migration(migrations.Migration):

    dependencies = [
        ('cameo', '0002_private_biometrics'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProtectedLikeness',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('aliases', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=100), blank=True, default=list, size=None)),
                ('reason', models.CharField(choices=[('public_figure', 'Public figure'), ('deceased', 'Deceased'), ('by_request', 'By request')], max_length=16)),
                ('reference', models.FileField(blank=True, max_length=300, storage=core.storage.biometric_storage, upload_to=cameo.models.protected_reference_name)),
                ('template_vector', pgvector.django.vector.VectorField(blank=True, dimensions=512, null=True)),
                ('template_dim', models.PositiveSmallIntegerField(default=0)),
                ('encoder', models.CharField(blank=True, default='', max_length=32)),
                ('encoder_version', models.CharField(blank=True, default='', max_length=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'protected likenesses',
                'constraints': [models.CheckConstraint(condition=models.Q(('reason__in', ['public_figure', 'deceased', 'by_request'])), name='protected_likeness_reason_valid'), models.UniqueConstraint(django.db.models.functions.text.Lower('name'), name='protected_likeness_name_unique'), models.CheckConstraint(condition=models.Q(('template_vector__isnull', True), models.Q(('reference', ''), _negated=True), _connector='OR'), name='protected_likeness_template_has_reference')],
            },
        ),
        migrations.AddField(
            model_name='cameo',
            name='verified_as',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='cameos', to='cameo.protectedlikeness'),
        ),
        # Reversing drops the table, seeds and all.
        migrations.RunPython(seed_public_figures, migrations.RunPython.noop),
    ]
