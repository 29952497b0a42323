"""Reads about cameos: who may see them, who may use them, where they appear."""

from __future__ import annotations

import datetime as dt

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from cameo.models import (
    TRENDING_WINDOW_S,
    Cameo,
    CameoAudit,
    CameoGrant,
    CameoRequest,
    CameoStatus,
    Permission,
    ProtectedLikeness,
)
from core.errors import Forbidden, NotFound
from social.models import Block, Follow, Like, Post, User

# A cameo's identity template (512 floats) is read where the likeness is compared or rendered,
# never by a list: the list selectors leave it out.
_LIST_DEFERRED = ("template_vector",)


def owned_cameos(*, owner: User) -> QuerySet[Cameo]:
    return (
        Cameo.objects.filter(owner=owner)
        .exclude(status=CameoStatus.DELETED)
        .select_related("owner")
        .defer(*_LIST_DEFERRED)
    )


def _relations(user: User) -> dict:
    """What the rules below ask about `user` and a cameo's owner, as SQL expressions."""
    blocked = Block.objects.filter(
        Q(blocker_id=user.pk, blocked_id=OuterRef("owner_id"))
        | Q(blocker_id=OuterRef("owner_id"), blocked_id=user.pk)
    )
    follows_owner = Follow.objects.filter(follower_id=user.pk, followee_id=OuterRef("owner_id"))
    followed_by_owner = Follow.objects.filter(follower_id=OuterRef("owner_id"), followee_id=user.pk)
    return {
        "blocked": Exists(blocked),
        "granted": Exists(CameoGrant.objects.filter(cameo_id=OuterRef("pk"), grantee_id=user.pk)),
        "mutual": Exists(follows_owner) & Exists(followed_by_owner),
        "owner_is_adult": Q(owner__birth_date__isnull=False, owner__birth_date__lte=_adult_birth_cutoff()),
    }


def _usable(user: User) -> Q:
    """The consent rule, written once (see `usable_cameos`)."""
    rel = _relations(user)
    return Q(status=CameoStatus.ACTIVE, owner__is_active=True) & (
        Q(owner_id=user.pk)
        | (
            ~rel["blocked"]
            & (
                (Q(permission=Permission.EVERYONE) & rel["owner_is_adult"])
                | (
                    Q(permission__in=[Permission.APPROVED, Permission.MUTUALS, Permission.EVERYONE])
                    & rel["granted"]
                )
                | (Q(permission__in=[Permission.MUTUALS, Permission.EVERYONE]) & rel["mutual"])
            )
        )
    )


def _askable(user: User) -> Q:
    """Cameos `user` may read and ask to use: shared beyond `only_me`, nobody blocked; a minor's
    cameo only by the minor's mutuals, never by strangers."""
    rel = _relations(user)
    return (
        Q(status=CameoStatus.ACTIVE, owner__is_active=True)
        & ~Q(permission=Permission.ONLY_ME)
        & ~rel["blocked"]
        & (rel["owner_is_adult"] | rel["mutual"])
    )


def usable_cameos(*, user: User) -> QuerySet[Cameo]:
    """Active cameos `user` may use now, as one query: the consent rule, written once.

    The owner always; nobody across a block with the owner, nor anyone while the owner's account
    is deactivated; `everyone` anyone (a minor's cameo never reaches past mutuals); `approved`,
    `mutuals` and `everyone` granted users; `mutuals` and `everyone` mutual followers. Every
    decision in Python (`services.usable_versions`) asks this query rather than restating it.
    """
    return Cameo.objects.filter(_usable(user)).select_related("owner").defer(*_LIST_DEFERRED)


def usable_by_everyone() -> Q:
    """Cameos any user may use: the consent rule (`_usable`) applied to someone with no relation
    to the owner (no grant, no follow, no block, not the owner), so it is derived, not restated:
    `everyone`, active, the owner's account active and the owner an adult."""
    return _usable(User())


def trending_cameos(*, viewer: User) -> QuerySet[Cameo]:
    """Cameos usable by everyone (and so by `viewer`, across no block) with an appearance published
    within the trending window; page them by (`trending_key`, id) descending, which is the order
    of their decayed counts of published appearances (models.TRENDING_TAU_S). One query."""
    since = timezone.now() - dt.timedelta(seconds=TRENDING_WINDOW_S)
    return (
        Cameo.objects.filter(usable_by_everyone() & _usable(viewer))
        .filter(trending_key__isnull=False, trending_at__gte=since)
        .select_related("owner")
        .defer(*_LIST_DEFERRED)
    )


def may_ask_for(*, user: User, cameo: Cameo) -> bool:
    """Whether `user`, not its owner, may read `cameo` and ask to use it: those who may use it,
    and those who may ask (`_askable`). One query."""
    return Cameo.objects.filter(pk=cameo.pk).filter(_usable(user) | _askable(user)).exists()


def _adult_birth_cutoff():
    from django.utils import timezone

    from social.models import ADULT_AGE

    today = timezone.localdate()
    try:
        return today.replace(year=today.year - ADULT_AGE)
    except ValueError:  # 29 February
        return today.replace(year=today.year - ADULT_AGE, day=28)


def get_cameo_for(*, viewer: User, cameo_id) -> Cameo:
    """The owner sees their cameo in any state, erased ones included (no biometrics remain; the
    audit trail stays theirs to read); others see it only while they may use it or ask to
    (`may_ask_for`: never an `only_me` cameo, never a minor's cameo unless they are mutuals).
    Everyone else: 404."""
    try:
        cameo = Cameo.objects.select_related("owner").get(pk=int(cameo_id))
    except (Cameo.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound() from exc
    if cameo.owner_id == viewer.pk:
        return cameo
    if not may_ask_for(user=viewer, cameo=cameo):
        raise NotFound()
    return cameo


def get_owned_cameo(*, owner: User, cameo_id, include_deleted: bool = False) -> Cameo:
    """The owner's cameo; an erased one only with `include_deleted` (reads of its record), so
    nothing can be changed on it."""
    cameo = get_cameo_for(viewer=owner, cameo_id=cameo_id)
    if cameo.owner_id != owner.pk or (cameo.status == CameoStatus.DELETED and not include_deleted):
        raise NotFound()
    return cameo


def appearance_posts(*, cameo: Cameo, viewer: User) -> QuerySet[Post]:
    """Every post that uses the cameo, whatever its status or author, for the cameo's owner."""
    return (
        Post.objects.filter(appearances__cameo=cameo)
        .select_related("author")
        .annotate(liked_by_me=Exists(Like.objects.filter(post_id=OuterRef("pk"), user_id=viewer.pk)))
    )


def audit_of(*, cameo: Cameo) -> QuerySet[CameoAudit]:
    return CameoAudit.objects.filter(cameo_id_value=cameo.pk)


def requests_for(*, cameo: Cameo) -> QuerySet[CameoRequest]:
    return CameoRequest.objects.filter(cameo=cameo).select_related("requester")


# --- protected likenesses ---------------------------------------------------------------------


def require_staff(user: User) -> None:
    """The registry of protected likenesses, and who is verified as whom, is staff's alone."""
    if not getattr(user, "is_staff", False):
        raise Forbidden("Only staff may do this.")


def protected_likenesses_for(*, viewer: User) -> QuerySet[ProtectedLikeness]:
    require_staff(viewer)
    return ProtectedLikeness.objects.defer("template_vector")


def get_protected_likeness_for(*, viewer: User, likeness_id) -> ProtectedLikeness:
    require_staff(viewer)
    try:
        return ProtectedLikeness.objects.get(pk=int(likeness_id))
    except (ProtectedLikeness.DoesNotExist, ValueError, TypeError, OverflowError) as exc:
        raise NotFound() from exc


def get_cameo_for_staff(*, viewer: User, cameo_id) -> Cameo:
    """Any cameo, whoever owns it, for staff; 403 for everyone else."""
    require_staff(viewer)
    try:
        return Cameo.objects.select_related("owner", "verified_as").get(pk=int(cameo_id))
    except (Cameo.DoesNotExist, ValueError, TypeError, OverflowError) as exc:
        raise NotFound() from exc
