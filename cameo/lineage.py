"""Likeness lineage: which people a video carries, and whether it may carry them now.

A video carries the cameos its job names plus every cameo of each video it is made from (a
remix or continuation starts from its source, and a stitch will join several sources): those
faces are in its frames as surely as the named ones. `job_likenesses` computes that set, and it is
the only way a likeness enters a job; `authorize_likenesses` applies the one consent rule
(`selectors.usable_cameos`) to all of it, at request time; the rechecks (worker start, store,
publish) apply the same rule to the versions it recorded. A new path into a video adds sources, never a rule.

A source's likenesses are read from its recorded cameo references (`Post.cameo_refs`, kept on the
post row): they outlive the erasure of a cameo and even of its owner's account, so a source that
shows a face nobody can consent for any more is refused by id, without keeping any biometrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cameo.models import Cameo
from cameo.services import cameo_not_permitted, usable_versions
from social.models import Post, User


@dataclass(frozen=True)
class Likeness:
    """One cameo a job carries; `inherited_from` is the source post it came through (None when
    the job names it)."""

    cameo_id: int
    inherited_from: int | None = None


def recorded_cameo_ids(post: Post) -> list[int]:
    """The cameos `post` was recorded to carry, whatever has happened to them since."""
    ids = []
    for ref in post.cameo_refs or []:
        try:
            ids.append(int(ref["id"]))
        except (KeyError, TypeError, ValueError):
            continue
    return list(dict.fromkeys(ids))


def job_likenesses(*, cameo_ids: Sequence, sources: Sequence[Post] = ()) -> list[Likeness]:
    """The named cameos (in the order given), then each source's recorded cameos not named
    already. A named id that is no integer is refused here as an unknown cameo would be."""
    likenesses: dict[int, Likeness] = {}
    for raw_id in cameo_ids:
        try:
            cameo_id = int(raw_id)
        except (TypeError, ValueError) as exc:
            raise cameo_not_permitted(raw_id) from exc
        likenesses.setdefault(cameo_id, Likeness(cameo_id=cameo_id))
    for source in sources:
        for cameo_id in recorded_cameo_ids(source):
            likenesses.setdefault(cameo_id, Likeness(cameo_id=cameo_id, inherited_from=source.pk))
    return list(likenesses.values())


@dataclass(frozen=True)
class AuthorisedLikeness:
    cameo: Cameo
    consent_version: int
    inherited_from: int | None

    def consent_entry(self) -> dict:
        """What a job keeps of the decision (`Generation.cameo_consents`)."""
        return {
            "cameo_id": self.cameo.pk,
            "owner_id": self.cameo.owner_id,
            "owner_username": self.cameo.owner.username,
            "consent_version": self.consent_version,
            "template_version": self.cameo.template_version,
            "inherited_from": self.inherited_from,
        }


def authorize_likenesses(*, user: User, likenesses: Sequence[Likeness]) -> list[AuthorisedLikeness]:
    """Every likeness authorised for `user` now, named or inherited alike (403
    `cameo_not_permitted`, naming the cameo and, for an inherited one, the source it came
    through). Two queries whatever the number of cameos."""
    if not likenesses:
        return []
    versions = usable_versions(user=user, cameo_ids=[likeness.cameo_id for likeness in likenesses])
    for likeness in likenesses:
        if likeness.cameo_id not in versions:
            refusal = cameo_not_permitted(likeness.cameo_id)
            if likeness.inherited_from is not None:
                refusal.details["inherited_from"] = str(likeness.inherited_from)
            raise refusal
    cameos = Cameo.objects.select_related("owner").in_bulk(list(versions))
    return [
        AuthorisedLikeness(
            cameo=cameos[likeness.cameo_id],
            consent_version=versions[likeness.cameo_id],
            inherited_from=likeness.inherited_from,
        )
        for likeness in likenesses
    ]
