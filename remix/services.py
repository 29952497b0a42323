"""Every write of the remix app: rights holders, IP and policies, licences, remix rights, revenue."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, Forbidden, NotFound
from remix.ip import LicenceUse, embed_description
from remix.ledger import RecordedEvent, record_revenue_event  # noqa: F401 - the service of POST /revenue/events
from remix.models import (
    IntellectualProperty,
    IpLicence,
    IpPolicy,
    MemberRole,
    PolicyStatus,
    RightsHolder,
    RightsHolderMember,
)
from remix.selectors import get_rights_holder, is_public_ip, member_role, parse_id
from social.models import Post, PostStatus, User

POLICY_FIELDS = ("status", "allow_cameos", "disallowed_themes", "revenue_share_bps")


# ---- remix rights ----


def check_remix_allowed(*, user: User, source_post: Post | int) -> Post:
    """The source post, if `user` may remix it: 404 when the user cannot see it (the social
    visibility rules: drafts, removed posts, blocks), 403 `remix_not_allowed` when it is not a
    published post or its author turned remixing off. Authors may always remix their own posts,
    drafts included, but only a draft that could be published now: one that would fail its
    publish checks (409 `consent_revoked` when a cameo in it no longer consents) is no source
    either. The likenesses a source carries are authorised separately (`cameo.lineage`)."""
    from social import hooks
    from social.selectors import get_visible_post

    post_id = source_post.pk if isinstance(source_post, Post) else source_post
    post = get_visible_post(viewer=user, post_id=post_id)
    if post.author_id == user.pk and post.status == PostStatus.DRAFT:
        hooks.run_publish_checks(post)
        return post
    if post.author_id == user.pk and post.status == PostStatus.PUBLISHED:
        return post
    if post.status != PostStatus.PUBLISHED or not post.remix_allowed:
        raise Forbidden(
            "This post may not be remixed.", code="remix_not_allowed", details={"post_id": str(post.pk)}
        )
    return post


# ---- rights holders ----


def _require_role(*, user: User, rights_holder: RightsHolder, admin: bool) -> None:
    role = member_role(user=user, rights_holder_id=rights_holder.pk)
    if role is None or (admin and role != MemberRole.ADMIN):
        raise Forbidden(
            "Only admins of this rights holder may do this." if admin else "Only members may see this.",
            code="forbidden",
        )


def create_rights_holder(*, user: User, name: str) -> RightsHolder:
    name = " ".join(name.split())
    try:
        with transaction.atomic():
            holder = RightsHolder.objects.create(name=name)
            RightsHolderMember.objects.create(rights_holder=holder, user=user, role=MemberRole.ADMIN)
    except IntegrityError:
        raise Conflict("A rights holder with this name exists.", code="name_taken") from None
    return holder


def verify_rights_holder(*, actor: User, rights_holder_id) -> RightsHolder:
    if not actor.is_staff:
        raise Forbidden("Only staff verify rights holders.")
    with transaction.atomic():
        holder = get_rights_holder(rights_holder_id=rights_holder_id)
        holder = RightsHolder.objects.select_for_update().get(pk=holder.pk)
        if not holder.verified:
            holder.verified = True
            holder.verified_at = timezone.now()
            holder.save(update_fields=["verified", "verified_at"])
    return holder


def set_member(*, actor: User, rights_holder_id, username: str, role: str) -> RightsHolderMember:
    from social.selectors import get_active_user

    holder = get_rights_holder(rights_holder_id=rights_holder_id)
    _require_role(user=actor, rights_holder=holder, admin=True)
    target = get_active_user(username=username)
    if target is None:
        raise NotFound("No such user.")
    with transaction.atomic():
        # Lock the organisation so two admins cannot demote each other into having no admin.
        RightsHolder.objects.select_for_update().get(pk=holder.pk)
        member, _ = RightsHolderMember.objects.get_or_create(
            rights_holder=holder, user=target, defaults={"role": role}
        )
        if member.role != role:
            if role != MemberRole.ADMIN and _admin_count(holder) == 1 and member.role == MemberRole.ADMIN:
                raise Conflict("A rights holder keeps at least one admin.", code="last_admin")
            member.role = role
            member.save(update_fields=["role"])
    return member


def remove_member(*, actor: User, rights_holder_id, username: str) -> None:
    holder = get_rights_holder(rights_holder_id=rights_holder_id)
    _require_role(user=actor, rights_holder=holder, admin=True)
    with transaction.atomic():
        RightsHolder.objects.select_for_update().get(pk=holder.pk)
        member = RightsHolderMember.objects.filter(
            rights_holder=holder, user__username__iexact=username
        ).first()
        if member is None:
            return
        if member.role == MemberRole.ADMIN and _admin_count(holder) == 1:
            raise Conflict("A rights holder keeps at least one admin.", code="last_admin")
        member.delete()


def _admin_count(holder: RightsHolder) -> int:
    return RightsHolderMember.objects.filter(rights_holder=holder, role=MemberRole.ADMIN).count()


# ---- IP and policies ----


def _clean_aliases(aliases: Sequence[str]) -> list[str]:
    seen = {}
    for alias in aliases:
        cleaned = " ".join(str(alias).split())
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return list(seen.values())


def _clean_themes(themes: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(" ".join(str(theme).split()) for theme in themes if str(theme).strip()))


def register_ip(
    *,
    actor: User,
    rights_holder_id,
    name: str,
    aliases: Sequence[str] = (),
    description: str = "",
    policy: dict | None = None,
) -> IntellectualProperty:
    """A new IP with policy version 1. Only admins of a verified rights holder may register IP, so
    nobody can claim a character before staff have checked who they are."""
    holder = get_rights_holder(rights_holder_id=rights_holder_id)
    _require_role(user=actor, rights_holder=holder, admin=True)
    return _create_ip(
        holder=holder, actor=actor, name=name, aliases=aliases, description=description, policy=policy or {}
    )


def _create_ip(
    *, holder: RightsHolder, actor: User, name: str, aliases: Sequence[str], description: str, policy: dict
) -> IntellectualProperty:
    """The one way an IP comes to exist (the API and the Django admin): the holder must be verified."""
    if not holder.verified:
        raise Forbidden("The rights holder is not verified yet.", code="rights_holder_unverified")
    embedding = embed_description(description)
    with transaction.atomic():
        ip = IntellectualProperty.objects.create(
            rights_holder=holder,
            name=" ".join(name.split()),
            aliases=_clean_aliases(aliases),
            description=description.strip(),
            description_embedding=embedding,
        )
        first = IpPolicy.objects.create(
            ip=ip,
            version=1,
            status=policy.get("status", PolicyStatus.OPTED_OUT),
            allow_cameos=policy.get("allow_cameos", False),
            disallowed_themes=_clean_themes(policy.get("disallowed_themes", [])),
            revenue_share_bps=policy.get("revenue_share_bps", 0),
            created_by=actor,
        )
        ip.current_policy = first
        ip.save(update_fields=["current_policy"])
    return ip


def update_ip(
    *,
    actor: User | None,
    ip_id,
    name: str | None = None,
    aliases: Sequence[str] | None = None,
    description: str | None = None,
    policy: dict | None = None,
    as_staff: bool = False,
) -> IntellectualProperty:
    """Change an IP. Any change of its policy writes a new policy version (earlier versions stay,
    because licences point at the version they were granted under). With `as_staff` (the Django
    admin, which checks its own access) or no actor (system tasks) the role check is skipped."""
    with transaction.atomic():
        try:
            ip = (
                IntellectualProperty.objects.select_for_update(of=("self",))
                .select_related("current_policy", "rights_holder")
                .get(pk=parse_id(ip_id, message="No such IP."))
            )
        except IntellectualProperty.DoesNotExist:
            raise NotFound("No such IP.") from None
        if actor is not None and not as_staff:
            role = member_role(user=actor, rights_holder_id=ip.rights_holder_id)
            if role is None and not is_public_ip(ip):
                raise NotFound("No such IP.")
            if role != MemberRole.ADMIN:
                raise Forbidden("Only admins of its rights holder may change an IP.")
        changed = []
        if name is not None:
            ip.name = " ".join(name.split())
            changed.append("name")
        if aliases is not None:
            ip.aliases = _clean_aliases(aliases)
            changed.append("aliases")
        if description is not None and description.strip() != ip.description:
            ip.description = description.strip()
            ip.description_embedding = embed_description(ip.description)
            changed += ["description", "description_embedding"]
        if policy:
            current = ip.current_policy
            merged = {field: getattr(current, field) for field in POLICY_FIELDS}
            merged.update({key: value for key, value in policy.items() if key in POLICY_FIELDS})
            merged["disallowed_themes"] = _clean_themes(merged["disallowed_themes"])
            if any(merged[field] != getattr(current, field) for field in POLICY_FIELDS):
                ip.current_policy = IpPolicy.objects.create(
                    ip=ip, version=current.version + 1, created_by=actor, **merged
                )
                changed.append("current_policy")
        if changed:
            ip.save(update_fields=changed)
    return ip


# ---- licences ----


def record_licences(*, post: Post, uses: Sequence[LicenceUse]) -> list[IpLicence]:
    """Record that `post` uses each IP under the policy version its use was accepted under, and
    fill the post's `ip_refs` (`[{id, name, rights_holder: {id, name}}]`). Idempotent."""
    if not uses:
        return []
    with transaction.atomic():
        licences = []
        for use in uses:
            licence, _ = IpLicence.objects.get_or_create(
                post_id=post.pk, ip_id=use.ip_id, defaults={"policy_id": use.policy_id}
            )
            licences.append(licence)
        refs = [
            {
                "id": str(use.ip_id),
                "name": use.ip_name,
                "rights_holder": {"id": str(use.rights_holder_id), "name": use.rights_holder_name},
            }
            for use in sorted(uses, key=lambda use: use.ip_id)
        ]
        Post.objects.filter(pk=post.pk).update(ip_refs=refs)
        post.ip_refs = refs
    return licences


def save_ip_from_admin(*, actor: User, ip: IntellectualProperty, policy: dict) -> IntellectualProperty:
    """The Django admin's save: staff act for the rights holder. A new IP gets policy version 1;
    an existing one goes through `update_ip`, so a changed policy is a new version there too."""
    if ip.pk is None:
        return _create_ip(
            holder=ip.rights_holder,
            actor=actor,
            name=ip.name,
            aliases=ip.aliases,
            description=ip.description,
            policy=policy,
        )
    return update_ip(
        actor=actor,
        as_staff=True,
        ip_id=ip.pk,
        name=ip.name,
        aliases=ip.aliases,
        description=ip.description,
        policy=policy,
    )
