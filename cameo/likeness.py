"""Which active cameos appear in these images? Used to scan generated videos before they are stored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from cameo.identity import get_encoder
from cameo.services import nearest_claimed_likeness


@dataclass(frozen=True)
class CameoMatch:
    cameo_id: int
    owner_id: int
    distance: float


def find_cameos_in_frames(frames: list[np.ndarray], *, exclude_cameo_ids=()) -> list[CameoMatch]:
    """Every active cameo (same encoder, via the pgvector index) whose face is in any frame,
    closest distance first; cameos in `exclude_cameo_ids` are not reported."""
    encoder = get_encoder()
    excluded = {int(cameo_id) for cameo_id in exclude_cameo_ids}
    best: dict[int, CameoMatch] = {}
    for frame in frames:
        for face in encoder.embed(frame):
            match = nearest_claimed_likeness(
                template=face.embedding,
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
