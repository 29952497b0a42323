import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cameo import services
from cameo.models import Cameo, Permission
from tests.cameo import clips

_clip_cache: dict[str, bytes] = {}
_names = itertools.count(1)


def clip(name: str) -> bytes:
    """Clips are deterministic; build each once per test session."""
    if name not in _clip_cache:
        _clip_cache[name] = getattr(clips, name)()
    return _clip_cache[name]


def upload(data: bytes, name: str = "me.mp4", content_type: str = "video/mp4") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def enrolled_cameo(django_capture_on_commit_callbacks):
    """Enrolls `owner`'s cameo through the service and the analysis (the task body), synchronously."""

    def enroll(
        owner, *, face=None, permission=Permission.ONLY_ME, data: bytes | None = None, **extra
    ) -> Cameo:
        face_px = extra.pop("face_px", 130)
        payload = (
            data
            if data is not None
            else (
                clips.enrollment_clip(face, face_px=face_px) if face is not None else clip("enrollment_clip")
            )
        )
        with django_capture_on_commit_callbacks(execute=False):
            cameo = services.start_enrollment(
                owner=owner,
                video=upload(payload),
                display_name=extra.pop("display_name", f"cameo {next(_names)}"),
                permission=permission,
                instructions=extra.pop("instructions", ""),
            )
        with django_capture_on_commit_callbacks(execute=True):
            services.enroll(cameo_id=cameo.pk)
        cameo.refresh_from_db()
        return cameo

    return enroll


def image_upload(data: bytes, name: str = "pet.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def enrolled_character(django_capture_on_commit_callbacks):
    """Enrolls `owner`'s character from `images` (bytes) or `video` (bytes) through the service and
    the analysis (the task body), synchronously."""

    def enroll(owner, *, images=(), video: bytes | None = None, **extra) -> Cameo:
        with django_capture_on_commit_callbacks(execute=False):
            cameo = services.start_enrollment(
                owner=owner,
                kind="character",
                images=[image_upload(data, f"pet{index}.png") for index, data in enumerate(images)],
                video=upload(video, "pet.mp4") if video is not None else None,
                display_name=extra.pop("display_name", f"pet {next(_names)}"),
                **extra,
            )
        with django_capture_on_commit_callbacks(execute=True):
            services.enroll(cameo_id=cameo.pk)
        cameo.refresh_from_db()
        return cameo

    return enroll
