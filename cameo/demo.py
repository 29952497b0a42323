"""The cameo part of the demo: alice enrolls her likeness (shared with mutuals; bob and alice follow
each other), through the same upload check and analysis as the app."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from cameo import services
from cameo.models import Cameo, CameoStatus, Permission
from cameo.sample_media import verification_clip
from social.models import Follow, User


def seed_cameo_demo(users: dict[str, User]) -> Cameo | None:
    alice, bob = users.get("alice"), users.get("bob")
    if alice is None or bob is None:
        return None
    Follow.objects.get_or_create(follower=alice, followee=bob)
    Follow.objects.get_or_create(follower=bob, followee=alice)
    existing = Cameo.objects.filter(owner=alice).exclude(status=CameoStatus.DELETED).first()
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
