"""Reads of the generation app."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from core.errors import Forbidden
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
        from core.errors import NotFound

        raise NotFound("This post has no creation record.")
    return record


def post_for_content_id(content_id: uuid.UUID | None) -> Post | None:
    if content_id is None:
        return None
    return Post.objects.filter(content_id=content_id).only("pk", "content_id").first()
