"""Reads of the generation app."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import QuerySet

from core.errors import Forbidden, NotFound, TooLarge, UnsupportedMedia
from generation.models import Generation, Provenance
from social.models import Post, User


def generations_of(*, user: User) -> QuerySet[Generation]:
    return Generation.objects.filter(user_id=user.pk)


def provenance_for(*, viewer: User, post_id) -> Provenance:
    """The creation record, for the post's author and the owners of cameos in it (404 to whoever
    cannot see the post, 403 to others who can)."""
    from social.selectors import get_visible_post

    post = get_visible_post(viewer=viewer, post_id=post_id)
    if viewer.pk != post.author_id and viewer.pk not in (post.cameo_owner_ids or []):
        raise Forbidden("Only the author and the people in this video may read its provenance.")
    record = Provenance.objects.filter(post_id=post.pk).first()
    if record is None:
        raise NotFound("This post has no creation record.")
    return record


def post_for_content_id(content_id: uuid.UUID | None) -> Post | None:
    if content_id is None:
        return None
    return Post.objects.filter(content_id=content_id).only("pk", "content_id").first()


def verify_upload(upload) -> dict:
    """What an uploaded file carries of our labels, and the post it came from (413 when larger
    than GENERATION_VERIFY_MAX_BYTES, 415 when it is not a video the decoder reads)."""
    from generation.provenance import read_labels

    if upload.size > settings.GENERATION_VERIFY_MAX_BYTES:
        raise TooLarge(f"Files up to {settings.GENERATION_VERIFY_MAX_BYTES} bytes can be verified.")
    try:
        result = read_labels(upload.read())
    except Exception as exc:  # noqa: BLE001 - whatever the decoder rejects is not a video we read
        raise UnsupportedMedia("The file is not a video this service can read.") from exc
    post = post_for_content_id(result.content_id)
    return {
        "generated_here": post is not None,
        "post_id": None if post is None else str(post.pk),
        "content_id": None if result.content_id is None else str(result.content_id),
        "label": result.label,
        "watermark_found": result.watermark_found,
        "metadata_found": result.metadata_found,
    }
