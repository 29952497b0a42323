"""Reads of the generation app."""

from __future__ import annotations

import uuid

import av
from django.conf import settings
from django.db.models import QuerySet

from core.errors import Forbidden, NotFound, TooLarge, UnsupportedMedia
from generation.encoding import FrameTooLarge
from generation.models import Generation, Provenance
from social.models import Post, User
from social.selectors import visible_posts


def generations_of(*, user: User) -> QuerySet[Generation]:
    return Generation.objects.filter(user_id=user.pk)


def provenance_for(*, viewer: User, post_id) -> Provenance:
    """The creation record, for the post's author and the owners of cameos in it, whatever blocks
    stand between them and the author (404 to whoever cannot see the post, 403 to others who can)."""
    from social.selectors import get_post_for_likeness_owner

    post = get_post_for_likeness_owner(viewer=viewer, post_id=post_id)
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


def verify_upload(upload, *, viewer) -> dict:
    """What an uploaded file carries of our labels, and whether it was made here (413 when larger
    than GENERATION_VERIFY_MAX_BYTES, 415 when it is not a video the decoder reads). The post it
    came from is named only to a viewer who may see that post (a draft's stays private)."""
    from generation.provenance import read_labels

    if upload.size > settings.GENERATION_VERIFY_MAX_BYTES:
        raise TooLarge(f"Files up to {settings.GENERATION_VERIFY_MAX_BYTES} bytes can be verified.")
    try:
        result = read_labels(upload.read())
    except FrameTooLarge as exc:
        raise TooLarge(
            f"Videos with frames up to {exc.max_pixels} pixels can be verified.",
            details={"width": exc.width, "height": exc.height},
        ) from exc
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise UnsupportedMedia("The file is not a video this service can read.") from exc
    post = post_for_content_id(result.content_id)
    shown = (
        post is not None and visible_posts(viewer=viewer, annotate_viewer=False).filter(pk=post.pk).exists()
    )
    return {
        "generated_here": post is not None,
        "post_id": str(post.pk) if shown else None,
        "content_id": None if result.content_id is None else str(result.content_id),
        "label": result.label,
        "watermark_found": result.watermark_found,
        "metadata_found": result.metadata_found,
    }
