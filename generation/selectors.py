"""Reads of the generation app."""

from __future__ import annotations

import uuid

import av
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from core.errors import Forbidden, NotFound, TooLarge, UnsupportedMedia
from generation import fingerprints, watermark
from generation.encoding import FrameTooLarge
from generation.models import Generation, Provenance
from social.models import Post, User
from social.selectors import visible_posts


def generations_of(*, user: User) -> QuerySet[Generation]:
    # A storyboard shows its shots: one more query per page, whatever its size.
    return Generation.objects.filter(user_id=user.pk).prefetch_related("shots")


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


# Candidates the HNSW search keeps per upload frame; at least NEIGHBOURS (pgvector's default 40).
FINGERPRINT_EF_SEARCH = 64


# The NEIGHBOURS nearest stored frames of every upload hash, in one statement: an index search per
# hash through a LATERAL join (pgvector's HNSW serves an ORDER BY ... LIMIT on an outer value).
NEAREST_FINGERPRINTS_SQL = """
    SELECT query.position, nearest.post_id, nearest.at_ms, nearest.distance
    FROM unnest(%(hashes)s::bit(256)[]) WITH ORDINALITY AS query (hash, position)
    CROSS JOIN LATERAL (
        SELECT post_id, at_ms, hash <~> query.hash AS distance
        FROM generation_contentfingerprint
        ORDER BY hash <~> query.hash
        LIMIT %(neighbours)s
    ) AS nearest
"""


def fingerprint_hits(queries: list[fingerprints.FrameHash]) -> list[fingerprints.Hit]:
    """The stored frames nearest each upload hash (HNSW over Hamming distance, NEIGHBOURS each).
    No WHERE on the distance: the index returns its ef_search candidates first and a filter would
    drop from those; `fingerprints.decide` applies the distance rule."""
    if not queries:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(FINGERPRINT_EF_SEARCH)}")
        cursor.execute(
            NEAREST_FINGERPRINTS_SQL,
            {"hashes": [query.bits for query in queries], "neighbours": fingerprints.NEIGHBOURS},
        )
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return [
        fingerprints.Hit(
            upload_ms=queries[row["position"] - 1].at_ms,
            mirrored=queries[row["position"] - 1].mirrored,
            post_id=row["post_id"],
            content_ms=row["at_ms"],
            distance=int(row["distance"]),
        )
        for row in rows
    ]


def fingerprint_match(upload: list[fingerprints.FrameHash]) -> fingerprints.Match | None:
    """The post whose stored frames an upload's hashes match (generation.fingerprints.decide)."""
    hits = fingerprint_hits(fingerprints.queries(upload))
    if not hits:
        return None
    durations = Post.objects.filter(pk__in={hit.post_id for hit in hits}).values_list("pk", "duration_s")
    return fingerprints.decide(
        hits,
        upload_ms=max(item.at_ms for item in upload) + fingerprints.UPLOAD_SAMPLE_MS,
        durations_ms={pk: round(seconds * 1000) for pk, seconds in durations},
    )


def post_for_watermark(key: int | None) -> Post | None:
    """The post whose content id the watermark's key starts, when exactly one does."""
    if key is None:
        return None
    posts = list(
        Post.objects.filter(content_id__range=watermark.content_id_bounds(key)).only("pk", "content_id")[:2]
    )
    return posts[0] if len(posts) == 1 else None


def post_matching_fingerprints(samples) -> tuple[Post, fingerprints.Match] | None:
    """The post an upload copies, by the perceptual hashes of its sampled frames, or None."""
    match = fingerprint_match(fingerprints.hash_upload(samples))
    if match is None:
        return None
    return Post.objects.only("pk", "content_id").get(pk=match.post_id), match


def verify_upload(upload, *, viewer) -> dict:
    """What an uploaded file carries of our labels, and whether it was made here (413 when larger
    than GENERATION_VERIFY_MAX_BYTES, 415 when it is not a video the decoder reads). A post is
    found by the watermark, else by the metadata's content id, else by the frames' fingerprints
    (the file is decoded once for all three); `match` says which, with a score (1 for an exact
    read of a label, the share of frames that matched for fingerprints). The post it came from is
    named only to a viewer who may see that post (a draft's stays private), and so is a content id
    the file itself does not carry."""
    from generation.provenance import read_upload

    if upload.size > settings.GENERATION_VERIFY_MAX_BYTES:
        raise TooLarge(f"Files up to {settings.GENERATION_VERIFY_MAX_BYTES} bytes can be verified.")
    data = upload.read()
    try:
        result = read_upload(data)
        match = None
        post = post_for_watermark(result.watermark.key)
        if post is not None:
            match = {"by": "watermark", "score": 1.0}
        else:
            post = post_for_content_id(result.labelled_content_id)
            if post is not None:
                match = {"by": "metadata", "score": 1.0}
        if post is None:
            found = post_matching_fingerprints(result.samples)
            if found is not None:
                post, fingerprint_match = found
                match = {"by": "fingerprint", "score": round(fingerprint_match.score, 3)}
    except FrameTooLarge as exc:
        raise TooLarge(
            f"Videos with frames up to {exc.max_pixels} pixels can be verified.",
            details={"width": exc.width, "height": exc.height},
        ) from exc
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise UnsupportedMedia("The file is not a video this service can read.") from exc
    shown = (
        post is not None and visible_posts(viewer=viewer, annotate_viewer=False).filter(pk=post.pk).exists()
    )
    # The metadata's content id is in the file for anyone to read; one found through the mark or
    # the frames is the post's, named with it.
    content_id = result.labelled_content_id
    if post is not None and match["by"] != "metadata":
        content_id = post.content_id if shown else None
    return {
        "generated_here": post is not None,
        "post_id": str(post.pk) if shown else None,
        "content_id": None if content_id is None else str(content_id),
        "label": result.label,
        "watermark_found": result.watermark_found,
        "metadata_found": result.metadata_found,
        "match": match,
    }
