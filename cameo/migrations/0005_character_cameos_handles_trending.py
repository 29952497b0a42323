# Character cameos (kind, reference images), handles (unique case-insensitively, released handles
# kept 30 days for their owner) and the trending score. Existing cameos are persons; the live ones
# (processing, active) get a handle derived from their owner's username, numbered when taken;
# rejected and erased ones get none. Appearances of published posts get their publish time, and
# the cameos the trending score of those published within the last week.

import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# Frozen here (the live rules are cameo/handles.py and cameo/models.py).
HANDLE_PATTERN = "^(?=.{3,30}$)[a-z0-9_]+(?:\\.[a-z0-9_]+)*$"
TRENDING_TAU_S = 3.5 * 86400
TRENDING_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _base(username):
    text = unicodedata.normalize("NFKD", username).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9_.]+", "_", text)
    base = re.sub(r"\.{2,}", ".", base).strip("._")
    base = re.sub(r"_{2,}", "_", base)[:24].strip(".")
    if len(base) < 3:
        base = f"{base}_cameo" if base else "cameo"
    return base


def backfill_handles(apps, schema_editor):
    Cameo = apps.get_model("cameo", "Cameo")
    taken = set()
    live = Cameo.objects.filter(status__in=["processing", "active"]).select_related("owner").order_by("id")
    for cameo in live.iterator():
        base, number = _base(cameo.owner.username), 1
        handle = base
        while handle in taken:
            number += 1
            handle = f"{base}{number}"
        taken.add(handle)
        Cameo.objects.filter(pk=cameo.pk).update(handle=handle)


PUBLISHED_AT_SQL = """
UPDATE cameo_appearance SET published_at = post.published_at
FROM social_post AS post
WHERE post.id = cameo_appearance.post_id AND post.status = 'published' AND post.published_at IS NOT NULL
"""


def backfill_trending(apps, schema_editor):
    Appearance = apps.get_model("cameo", "Appearance")
    Cameo = apps.get_model("cameo", "Cameo")
    since = django.utils.timezone.now() - timedelta(days=7)
    keys, latest = {}, {}
    recent = Appearance.objects.filter(published_at__gte=since).order_by("published_at")
    for cameo_id, at in recent.values_list("cameo_id", "published_at").iterator():
        weight = (at - TRENDING_EPOCH).total_seconds() / TRENDING_TAU_S
        key = keys.get(cameo_id)
        keys[cameo_id] = weight if key is None else max(key, weight) + math.log1p(math.exp(-abs(key - weight)))
        latest[cameo_id] = at
    for cameo_id, key in keys.items():
        Cameo.objects.filter(pk=cameo_id).update(trending_key=key, trending_at=latest[cameo_id])


class Migration(migrations.Migration):

    dependencies = [
        ("cameo", "0004_cameo_enrollment_sent_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ReleasedHandle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("handle", models.CharField(max_length=30)),
                ("released_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        django.db.models.functions.text.Lower("handle"), name="released_handle_unique"
                    )
                ],
            },
        ),
        migrations.RemoveConstraint(model_name="cameo", name="cameo_active_has_template"),
        migrations.AddField(
            model_name="appearance",
            name="published_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="cameo",
            name="handle",
            field=models.CharField(blank=True, max_length=30, null=True),
        ),
        migrations.AddField(
            model_name="cameo",
            name="kind",
            field=models.CharField(
                choices=[("person", "Person"), ("character", "Character")], default="person", max_length=10
            ),
        ),
        migrations.AddField(
            model_name="cameo",
            name="reference_images",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=300), blank=True, default=list, size=None
            ),
        ),
        migrations.AddField(
            model_name="cameo",
            name="source_images",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=300), blank=True, default=list, size=None
            ),
        ),
        migrations.AddField(
            model_name="cameo",
            name="trending_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="cameo",
            name="trending_key",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="cameo",
            name="rejection_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("no_face", "No Face"),
                    ("multiple_faces", "Multiple Faces"),
                    ("face_too_small", "Face Too Small"),
                    ("low_quality", "Low Quality"),
                    ("inconsistent_identity", "Inconsistent Identity"),
                    ("liveness_failed", "Liveness Failed"),
                    ("likeness_already_claimed", "Likeness Already Claimed"),
                    ("unsupported_media", "Unsupported Media"),
                    ("human_face", "Human Face"),
                    ("subject_too_small", "Subject Too Small"),
                ],
                default="",
                max_length=32,
            ),
        ),
        migrations.RunPython(backfill_handles, migrations.RunPython.noop),
        migrations.RunSQL(PUBLISHED_AT_SQL, migrations.RunSQL.noop),
        migrations.RunPython(backfill_trending, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="cameo",
            index=models.Index(
                condition=models.Q(("trending_key__isnull", False)),
                fields=["-trending_key", "-id"],
                name="cameo_trending_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="cameo",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind__in", ["person", "character"])), name="cameo_kind_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="cameo",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("handle"), name="cameo_handle_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="cameo",
            constraint=models.CheckConstraint(
                condition=models.Q(("handle__isnull", True), ("handle__regex", HANDLE_PATTERN), _connector="OR"),
                name="cameo_handle_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="cameo",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "active"), _negated=True),
                    models.Q(("kind", "person"), ("template_vector__isnull", False)),
                    models.Q(("kind", "character"), models.Q(("reference_images", []), _negated=True)),
                    _connector="OR",
                ),
                name="cameo_active_has_template",
            ),
        ),
        migrations.AddConstraint(
            model_name="cameo",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind", "person"), ("template_vector__isnull", True), _connector="OR"),
                name="cameo_character_has_no_template",
            ),
        ),
    ]
