"""What a data export (social/exports.py) holds of a user's generations: every job as the API
renders it, and the creation record (provenance) of each of the user's posts: the prompts, seed,
model and consents behind it, the record of human creative input a copyright claim needs."""

from __future__ import annotations

from generation.models import Provenance
from generation.selectors import generations_of
from social.exports import register_section


def generations(user) -> list[dict]:
    from generation.api.serializers import GenerationSerializer

    return GenerationSerializer(generations_of(user=user).order_by("created_at", "id"), many=True).data


def creation_records(user) -> list[dict]:
    from generation.api.serializers import ProvenanceSerializer

    records = Provenance.objects.filter(post__author_id=user.pk).order_by("post_id")
    return ProvenanceSerializer(records, many=True).data


register_section(
    "generations.json",
    describes="every generation job of the account: prompt, mode, duration, cameos, seed, status, resulting post",
    collect=generations,
)
register_section(
    "creation_records.json",
    describes="the creation record of each of the account's posts: prompts, composed prompt, seed, model, "
    "cameos with their consent versions, sources",
    collect=creation_records,
)
