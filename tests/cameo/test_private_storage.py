"""Biometric files in the private storage: named at random, deleted when enrollment ends or the cameo
is erased, and moved out of the media by migration 0002 where an older version left them."""

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from cameo import services
from cameo.identity import pad_template
from cameo.models import Cameo, CameoStatus, biometric_name
from core.storage import biometric_storage

pytestmark = pytest.mark.django_db

RANDOM_NAME = re.compile(r"cameos/[0-9a-f]{32}(\.[a-z0-9]+)?")


@pytest.fixture
def roots(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.BIOMETRICS_ROOT = str(tmp_path / "biometrics")
    return Path(settings.MEDIA_ROOT), Path(settings.BIOMETRICS_ROOT)


def files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_names_are_random_and_say_nothing_of_the_cameo(user):
    cameo = Cameo(pk=123456, owner=user)
    names = {biometric_name(cameo, "face.PNG") for _ in range(50)}
    assert len(names) == 50
    assert all(RANDOM_NAME.fullmatch(name) and name.endswith(".png") for name in names)
    assert RANDOM_NAME.fullmatch(biometric_name(cameo, "video"))


def test_enrollment_keeps_only_the_crop_and_erasure_deletes_it(
    roots, user, enrolled_cameo, django_capture_on_commit_callbacks
):
    media_root, biometrics_root = roots
    cameo = enrolled_cameo(user)
    assert cameo.status == CameoStatus.ACTIVE and not cameo.verification_video
    assert files_under(biometrics_root) == [cameo.face_crop.name]
    assert RANDOM_NAME.fullmatch(cameo.face_crop.name)
    assert files_under(media_root) == []
    with django_capture_on_commit_callbacks(execute=True):
        services.erase_cameo(actor=user, cameo=cameo)
    assert files_under(biometrics_root) == []


def test_a_rolled_back_erasure_keeps_the_files(
    roots, user, enrolled_cameo, django_capture_on_commit_callbacks
):
    _media_root, biometrics_root = roots
    cameo = enrolled_cameo(user)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.erase_cameo(actor=user, cameo=cameo)
        raise RuntimeError("the request fails after the erasure")
    assert callbacks == []
    assert files_under(biometrics_root) == [cameo.face_crop.name]


def test_migration_moves_old_files_out_of_the_media(roots, user, django_capture_on_commit_callbacks):
    media_root, biometrics_root = roots
    migration = importlib.import_module("cameo.migrations.0002_private_biometrics")
    template = pad_template(np.full(128, 1 / np.sqrt(128), dtype=np.float32))
    active = Cameo.objects.create(owner=user, display_name="a", status="active", template_vector=template)
    running = Cameo.objects.create(owner=user, display_name="b")
    rejected = Cameo.objects.create(
        owner=user, display_name="c", status="rejected", rejection_reason="no_face"
    )
    old = {
        (active, "face_crop"): b"crop of a",
        (active, "verification_video"): b"video of a",
        (running, "verification_video"): b"video of b",
        (rejected, "verification_video"): b"video of c",
    }
    for (cameo, field), data in old.items():
        folder = "face" if field == "face_crop" else "verification"
        name = default_storage.save(f"cameos/{cameo.pk}/{folder}/{field}", ContentFile(data))
        Cameo.objects.filter(pk=cameo.pk).update(**{field: name})

    with django_capture_on_commit_callbacks(execute=True):
        migration.move_biometrics_out_of_media(apps, None)

    for cameo in (active, running, rejected):
        cameo.refresh_from_db()
    assert not active.verification_video and not rejected.verification_video
    for cameo, field, data in (
        (active, "face_crop", b"crop of a"),
        (running, "verification_video", b"video of b"),
    ):
        name = getattr(cameo, field).name
        assert RANDOM_NAME.fullmatch(name)
        with biometric_storage().open(name) as handle:
            assert handle.read() == data
    assert files_under(biometrics_root) == sorted([active.face_crop.name, running.verification_video.name])
    assert files_under(media_root) == [] and not (media_root / "cameos").exists()
