"""The cameo part of the demo: alice enrolls her likeness (shared with mutuals; bob and alice follow
each other), and bob his cat Chelsea as a character (`@chelsea`, usable by everyone), both through
the same upload checks and analysis as the app. Running it again changes nothing."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageOps

from cameo import services
from cameo.models import Cameo, CameoKind, CameoStatus, Permission
from cameo.sample_media import verification_clip
from social.models import Follow, User

DEMO_PET_HANDLE = "chelsea"


def seed_cameo_demo(users: dict[str, User]) -> Cameo | None:
    """Alice's cameo (returned), and bob's cat (`seed_pet_demo`)."""
    alice, bob = users.get("alice"), users.get("bob")
    if alice is None or bob is None:
        return None
    Follow.objects.get_or_create(follower=alice, followee=bob)
    Follow.objects.get_or_create(follower=bob, followee=alice)
    seed_pet_demo(users)
    existing = (
        Cameo.objects.filter(owner=alice, kind=CameoKind.PERSON).exclude(status=CameoStatus.DELETED).first()
    )
    if existing is not None:
        return existing
    cameo = services.start_enrollment(
        owner=alice,
        video=SimpleUploadedFile("alice.mp4", verification_clip(), content_type="video/mp4"),
        display_name="Alice",
        permission=Permission.MUTUALS,
        instructions="wearing a red scarf",
        enqueue=False,
    )
    services.update_cameo(actor=alice, cameo=cameo, restrictions=["politics", "alcohol"])
    return services.enroll(cameo_id=cameo.pk)


def pet_photos() -> list[SimpleUploadedFile]:
    """scikit-image's sample cat (it ships with the package, a dependency of insightface), and
    the same cat mirrored and closer: two views."""
    from skimage import data

    cat = Image.fromarray(data.chelsea())
    closer = ImageOps.mirror(cat).crop((60, 20, 400, 290))
    photos = []
    for index, image in enumerate((cat, closer)):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        photos.append(SimpleUploadedFile(f"chelsea-{index}.png", buffer.getvalue(), content_type="image/png"))
    return photos


def seed_pet_demo(users: dict[str, User]) -> Cameo | None:
    """Bob's cat Chelsea, a character cameo anyone may use as `@chelsea`."""
    bob = users.get("bob")
    if bob is None:
        return None
    existing = Cameo.objects.filter(owner=bob, kind=CameoKind.CHARACTER, handle=DEMO_PET_HANDLE).first()
    if existing is not None:
        return existing
    cameo = services.start_enrollment(
        owner=bob,
        kind=CameoKind.CHARACTER,
        images=pet_photos(),
        handle=DEMO_PET_HANDLE,
        display_name="Chelsea",
        permission=Permission.EVERYONE,
        instructions="a tabby cat with green eyes",
        enqueue=False,
    )
    return services.enroll(cameo_id=cameo.pk)
