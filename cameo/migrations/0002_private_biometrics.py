# Biometric files move to the private storage under random names.

import contextlib
import os

from django.core.files.storage import default_storage
from django.db import migrations, models, transaction
from django.db.models import Q

import cameo.models
import core.storage


def move_biometrics_out_of_media(apps, schema_editor):
    """Files enrolled before this migration sit in the media storage under `cameos/<id>/`: each face
    crop, and the video of an enrollment still running, moves to the private storage under a random
    name; the videos of ended enrollments are deleted. The old files go once this commits."""
    Cameo = apps.get_model("cameo", "Cameo")
    private = core.storage.biometric_storage()
    obsolete = []
    for row in Cameo.objects.filter(~Q(face_crop="") | ~Q(verification_video="")).iterator():
        for field in ("face_crop", "verification_video"):
            old = getattr(row, field).name
            if not old:
                continue
            obsolete.append(old)
            keep = field == "face_crop" or row.status == "processing"
            new = ""
            if keep and default_storage.exists(old):
                with default_storage.open(old, "rb") as handle:
                    new = private.save(cameo.models.biometric_name(row, old), handle)
            Cameo.objects.filter(pk=row.pk).update(**{field: new})
    if obsolete:
        transaction.on_commit(lambda: _delete_from_media(obsolete))


def _delete_from_media(names):
    for name in names:
        default_storage.delete(name)
    if not hasattr(default_storage, "path"):  # object stores have no folders to remove
        return
    root = default_storage.path("cameos")
    for folder, _subfolders, _files in os.walk(root, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


class Migration(migrations.Migration):
    dependencies = [
        ("cameo", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="cameo",
            name="face_crop",
            field=models.FileField(
                blank=True,
                max_length=300,
                storage=core.storage.biometric_storage,
                upload_to=cameo.models.biometric_name,
            ),
        ),
        migrations.AlterField(
            model_name="cameo",
            name="verification_video",
            field=models.FileField(
                blank=True,
                max_length=300,
                storage=core.storage.biometric_storage,
                upload_to=cameo.models.biometric_name,
            ),
        ),
        migrations.RunPython(move_biometrics_out_of_media, migrations.RunPython.noop, elidable=True),
    ]
