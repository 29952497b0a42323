"""Reads of the remix app: roles, the IP catalogue, IP usage and remix lineage."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

from core.errors import Forbidden, NotFound
from core.themes import normalize_text
from remix.models import IntellectualProperty, IpLicence, PolicyStatus, RightsHolder, RightsHolderMember
from social.models import Post, User

MAX_ID = 2**63 - 1


def parse_id(raw, *, message: str = "Not found.") -> int:
    """An id from a URL as an int; anything that cannot be one (or overflows bigint) is a 404."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound(message) from None
    if not 0 < value <= MAX_ID:
        raise NotFound(message)
    return value


def member_role(*, user: User, rights_holder_id: int) -> str | None:
    if user is None or not user.is_authenticated:
        return None
    return (
        RightsHolderMember.objects.filter(user_id=user.pk, rights_holder_id=rights_holder_id)
        .values_list("role", flat=True)
        .first()
    )


def get_rights_holder(*, rights_holder_id) -> RightsHolder:
    try:
        return RightsHolder.objects.get(pk=parse_id(rights_holder_id, message="No such rights holder."))
    except RightsHolder.DoesNotExist:
        raise NotFound("No such rights holder.") from None


def get_rights_holder_for_member(*, viewer: User, rights_holder_id) -> RightsHolder:
    """A rights holder whose books the viewer may read: 404 when it does not exist, 403 to non-members."""
    holder = get_rights_holder(rights_holder_id=rights_holder_id)
    if member_role(user=viewer, rights_holder_id=holder.pk) is None:
        raise Forbidden("Only members of this rights holder may read its statements.")
    return holder


def _ips() -> QuerySet[IntellectualProperty]:
    return IntellectualProperty.objects.select_related("rights_holder", "current_policy").defer(
        "description_embedding"
    )


def ip_catalogue(*, q: str | None = None) -> QuerySet[IntellectualProperty]:
    """Opted-in IP of verified rights holders, optionally those whose name or an alias contains `q`
    (compared after the same normalisation as detection: case and width folded)."""
    ips = _ips().filter(rights_holder__verified=True, current_policy__status=PolicyStatus.OPTED_IN)
    if q and q.strip():
        needle = normalize_text(q.replace("\x00", ""))
        ips = ips.extra(
            where=[
                "(lower(remix_intellectualproperty.name) LIKE %s OR EXISTS (SELECT 1 FROM "
                "unnest(remix_intellectualproperty.aliases) AS alias WHERE lower(alias) LIKE %s))"
            ],
            params=[f"%{_like_escape(needle)}%"] * 2,
        )
    return ips


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def is_public_ip(ip: IntellectualProperty) -> bool:
    """Opted-in IP of a verified rights holder is public (the rule `ip_catalogue` filters by)."""
    return bool(
        ip.rights_holder.verified and ip.current_policy and ip.current_policy.status == PolicyStatus.OPTED_IN
    )


def get_ip_for_viewer(*, viewer: User | None, ip_id) -> tuple[IntellectualProperty, str | None]:
    """An IP and the viewer's role in its rights holder. Opted-in IP of verified holders is public;
    anything else is visible to members only (404 to the rest)."""
    try:
        ip = _ips().get(pk=parse_id(ip_id, message="No such IP."))
    except IntellectualProperty.DoesNotExist:
        raise NotFound("No such IP.") from None
    role = member_role(user=viewer, rights_holder_id=ip.rights_holder_id) if viewer else None
    if not is_public_ip(ip) and role is None and not (viewer and viewer.is_staff):
        raise NotFound("No such IP.")
    return ip, role


def ip_usage(*, viewer: User, ip_id) -> QuerySet[IpLicence]:
    """Licences of an IP with their post, author and policy version, for members of its rights
    holder only (403 to other viewers who may see the IP, 404 to the rest)."""
    ip, role = get_ip_for_viewer(viewer=viewer, ip_id=ip_id)
    if role is None:
        raise Forbidden("Only members of its rights holder may see where an IP is used.")
    return IpLicence.objects.filter(ip=ip).select_related("post__author", "policy")


# ---- lineage ----

ANCESTOR_IDS_SQL = """
WITH RECURSIVE chain(id, remix_of_id, hops) AS (
    SELECT id, remix_of_id, 0 FROM social_post WHERE id = %s
    UNION ALL
    SELECT parent.id, parent.remix_of_id, chain.hops + 1
      FROM social_post parent JOIN chain ON parent.id = chain.remix_of_id
     WHERE chain.hops < %s
)
SELECT id FROM chain WHERE hops > 0 ORDER BY hops DESC
"""
MAX_LINEAGE_DEPTH = 1000


@dataclass
class Lineage:
    ancestors: list[Post]
    depth: int


def lineage(*, viewer: User, post: Post) -> Lineage:
    """The chain of posts `post` was remixed from, root first. Ancestors the viewer may not see
    (deleted, drafts of others, across a block) are left out; `depth` is the post's own depth.
    Two queries whatever the depth: one recursive walk up `remix_of`, one fetch of visible posts."""
    from social.selectors import visible_posts

    with connection.cursor() as cursor:
        cursor.execute(ANCESTOR_IDS_SQL, [post.pk, MAX_LINEAGE_DEPTH])
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return Lineage(ancestors=[], depth=post.depth)
    by_id = {row.pk: row for row in visible_posts(viewer=viewer).filter(pk__in=ids)}
    return Lineage(ancestors=[by_id[pk] for pk in ids if pk in by_id], depth=post.depth)


def remixes_of(*, viewer: User, post: Post) -> QuerySet[Post]:
    """Direct remixes of `post` that the viewer may see."""
    from social.selectors import visible_posts

    return visible_posts(viewer=viewer).filter(Q(remix_of_id=post.pk))
