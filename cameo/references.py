"""The picture a cameo conditions a video with: a person's aligned face crop (kept from
enrollment), a character's best reference image (the first of its reference crops). Read from the
private biometrics storage, never from a URL.
"""

from __future__ import annotations

from PIL import Image

from cameo.models import Cameo, CameoKind
from core.storage import biometric_storage


class NoPicture(Exception):
    """The cameo has no picture to give (erased, or not enrolled)."""


def _missing(cameo: Cameo, what: str) -> NoPicture:
    return NoPicture(f"Cameo {cameo.pk} has no {what} (erased or not enrolled).")


def _read(name: str) -> Image.Image:
    with biometric_storage().open(name, "rb") as handle:
        return Image.open(handle).convert("RGB")


def conditioning_image(cameo: Cameo) -> Image.Image:
    """The cameo's conditioning picture as RGB; NoPicture when it has none to give."""
    if cameo.kind == CameoKind.CHARACTER:
        if not cameo.reference_images:
            raise _missing(cameo, "reference images")
        return _read(cameo.reference_images[0])
    if not cameo.face_crop:
        raise _missing(cameo, "face crop")
    return _read(cameo.face_crop.name)


def reference_images(cameo: Cameo) -> list[Image.Image]:
    """Every picture the cameo has, as RGB, the conditioning one first: a person's face crop, a
    character's 1-4 reference crops (chosen for variety); NoPicture when it has none."""
    if cameo.kind == CameoKind.CHARACTER:
        if not cameo.reference_images:
            raise _missing(cameo, "reference images")
        return [_read(name) for name in cameo.reference_images]
    return [conditioning_image(cameo)]
