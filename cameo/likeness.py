"""Whose likeness is in these images? Used to scan generated videos before they are stored.

Two registries are compared, each face against both: active cameos (through their HNSW index,
`services.nearest_claimed_likeness`) and protected likenesses' reference faces. Both use the
configured encoder (name and version: templates of another space are never compared) and the same
distance threshold, CAMEO_MATCH_MAX_DISTANCE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from pgvector.django import CosineDistance

from cameo.identity import IdentityEncoder, get_encoder, pad_template
from cameo.models import Cameo, ProtectedLikeness
from cameo.services import nearest_claimed_likeness


@dataclass(frozen=True)
class CameoMatch:
    cameo_id: int
    owner_id: int
    distance: float


@dataclass(frozen=True)
class ProtectedMatch:
    protected_likeness_id: int
    name: str
    distance: float


def _face_embeddings(frames: Iterable[np.ndarray], encoder: IdentityEncoder) -> list[np.ndarray]:
    return [face.embedding for frame in frames for face in encoder.embed(frame)]


def _cameo_matches(embeddings, encoder: IdentityEncoder, *, excluded: set[int]) -> list[CameoMatch]:
    best: dict[int, CameoMatch] = {}
    for embedding in embeddings:
        match = nearest_claimed_likeness(
            template=embedding,
            encoder_name=encoder.name,
            encoder_version=encoder.version,
            exclude_owner_id=None,
        )
        if match is None or match.distance > settings.CAMEO_MATCH_MAX_DISTANCE or match.pk in excluded:
            continue
        found = CameoMatch(cameo_id=match.pk, owner_id=match.owner_id, distance=float(match.distance))
        if match.pk not in best or found.distance < best[match.pk].distance:
            best[match.pk] = found
    return sorted(best.values(), key=lambda item: item.distance)


def nearest_protected_likeness(*, template, encoder_name: str, encoder_version: str):
    """The protected likeness whose reference face is closest to `template` (same encoder name and
    version), annotated with its cosine distance; None when none has a reference. An exact
    nearest-neighbour query: the registry is small and staff-kept, so no index to walk or miss."""
    return (
        ProtectedLikeness.objects.filter(
            encoder=encoder_name, encoder_version=encoder_version, template_vector__isnull=False
        )
        .annotate(distance=CosineDistance("template_vector", pad_template(template)))
        .order_by("distance", "id")
        .only("id", "name")
        .first()
    )


def _protected_matches(embeddings, encoder: IdentityEncoder, *, allowed: set[int]) -> list[ProtectedMatch]:
    best: dict[int, ProtectedMatch] = {}
    for embedding in embeddings:
        match = nearest_protected_likeness(
            template=embedding, encoder_name=encoder.name, encoder_version=encoder.version
        )
        if match is None or match.distance > settings.CAMEO_MATCH_MAX_DISTANCE or match.pk in allowed:
            continue
        found = ProtectedMatch(
            protected_likeness_id=match.pk, name=match.name, distance=float(match.distance)
        )
        if match.pk not in best or found.distance < best[match.pk].distance:
            best[match.pk] = found
    return sorted(best.values(), key=lambda item: item.distance)


def find_cameos_in_frames(frames: list[np.ndarray], *, exclude_cameo_ids=()) -> list[CameoMatch]:
    """Every active cameo (same encoder, via the pgvector index) whose face is in any frame,
    closest distance first; cameos in `exclude_cameo_ids` are not reported."""
    encoder = get_encoder()
    excluded = {int(cameo_id) for cameo_id in exclude_cameo_ids}
    return _cameo_matches(_face_embeddings(frames, encoder), encoder, excluded=excluded)


def find_protected_in_frames(frames: list[np.ndarray], *, allowed_ids=()) -> list[ProtectedMatch]:
    """Every protected likeness whose reference face is in any frame, closest first; those in
    `allowed_ids` are not reported."""
    encoder = get_encoder()
    allowed = {int(likeness_id) for likeness_id in allowed_ids}
    return _protected_matches(_face_embeddings(frames, encoder), encoder, allowed=allowed)


def find_unconsented_likenesses(
    frames: list[np.ndarray], *, cameo_ids: Iterable[int]
) -> list[CameoMatch | ProtectedMatch]:
    """The likenesses in the frames that a job with `cameo_ids` has no consent to show: any other
    active cameo, and any protected likeness that none of its cameos is verified as. Each face is
    found and embedded once and compared with both registries."""
    encoder = get_encoder()
    job_cameos = {int(cameo_id) for cameo_id in cameo_ids}
    embeddings = _face_embeddings(frames, encoder)
    if not embeddings:
        return []
    verified = set(
        Cameo.objects.filter(pk__in=job_cameos, verified_as__isnull=False).values_list(
            "verified_as_id", flat=True
        )
    )
    return [
        *_cameo_matches(embeddings, encoder, excluded=job_cameos),
        *_protected_matches(embeddings, encoder, allowed=verified),
    ]
