"""Guardians: an adult who looks after a minor and sets controls on their account (API.md, teens).

A minor asks for a code (`request_guardian_code`) and hands it to the adult, who redeems it
(`link_guardian`). The guardian then sets the teen's controls (`set_controls`; what each means:
`social.models.GuardianLink`), which apply at once: remixing of the teen's posts is turned off
here, their cameos are lowered under a cap by the cameo app (`social.hooks.run_cameo_cap_set`),
and the feed reads personalisation and the scroll limit on every request. Either side may unlink;
what the controls changed stays as it is, and the teen may change it back.

Every link, change of controls and unlink is kept in the teen's `GuardianAudit` and told to both
sides (a notification to each, naming the other as its actor).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import Conflict, Forbidden, NotFound, RuleRefusal
from social import hooks, selectors
from social.models import (
    GuardianAudit,
    GuardianCode,
    GuardianLink,
    NotificationKind,
    Post,
    User,
)
from social.services import _lock_account, notify

# No 0/O or 1/I: a code is read aloud and typed by hand. 32**8 is about 10**12 codes, and
# redeeming is throttled per user (GUARDIAN_LINK_RATE).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_ATTEMPTS = 5
CONTROL_FIELDS = ("personalised", "daily_scroll_limit", "cameo_permission_cap", "remix_of_my_posts")


def normalize_code(raw: str) -> str:
    """A code as typed (any case, with spaces or dashes) as it is stored."""
    return "".join(raw.split()).replace("-", "").upper()


def controls_of(link: GuardianLink) -> dict:
    """The controls as the API shows them: the scroll limit in force, the default when unset."""
    limit = link.daily_scroll_limit
    return {
        "personalised": link.personalised,
        "daily_scroll_limit": settings.SCROLL_LIMIT_MINOR if limit is None else limit,
        "cameo_permission_cap": link.cameo_permission_cap,
        "remix_of_my_posts": link.remix_of_my_posts,
    }


def _already_linked() -> Conflict:
    return Conflict("This teen already has a guardian.", code="already_has_guardian")


def _code_invalid() -> RuleRefusal:
    # Unknown, used and expired codes alike: the answer tells a guesser nothing.
    return RuleRefusal("This code is not valid (it may have expired).", code="guardian_code_invalid")


def request_guardian_code(*, teen: User) -> GuardianCode:
    """A new code for the minor, replacing any earlier one, valid for GUARDIAN_CODE_TTL_S.
    403 `not_a_minor` for adults; 409 `already_has_guardian` once the teen has one."""
    if not teen.is_minor:
        raise Forbidden("Only minors can have a guardian.", code="not_a_minor")
    with transaction.atomic():
        locked = _lock_account(teen)
        if GuardianLink.objects.filter(teen_id=locked.pk).exists():
            raise _already_linked()
        GuardianCode.objects.filter(teen_id=locked.pk).delete()
        expires_at = timezone.now() + timedelta(seconds=settings.GUARDIAN_CODE_TTL_S)
        for _attempt in range(CODE_ATTEMPTS):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            try:
                with transaction.atomic():
                    return GuardianCode.objects.create(teen=locked, code=code, expires_at=expires_at)
            except IntegrityError:
                continue  # another teen holds this code: draw again
    raise RuntimeError("no free guardian code after several draws")


def link_guardian(*, guardian: User, code: str) -> GuardianLink:
    """Makes the adult redeeming a minor's code their guardian, with the default controls.
    403 `guardian_must_be_adult` for a minor, 422 `guardian_code_invalid` for a code that is not
    valid now, 403 `blocked` across a block, 409 `already_has_guardian`."""
    if guardian.is_minor:
        raise Forbidden("Only adults can be guardians.", code="guardian_must_be_adult")
    with transaction.atomic():
        # Locked, so two adults redeeming one code cannot both win: the second finds it gone.
        found = (
            GuardianCode.objects.select_for_update(of=("self",))
            .select_related("teen")
            .filter(code=normalize_code(code), expires_at__gt=timezone.now())
            .first()
        )
        if found is None or not found.teen.is_active or not found.teen.is_minor:
            raise _code_invalid()
        teen = found.teen
        if selectors.is_blocked_either_way(user_id=guardian.pk, other_id=teen.pk):
            raise Forbidden("One of you blocked the other.", code="blocked")
        try:
            with transaction.atomic():
                link = GuardianLink.objects.create(teen=teen, guardian=guardian)
        except IntegrityError as exc:  # one guardian per teen: the database decides
            raise _already_linked() from exc
        found.delete()
        _record(link, actor=guardian, action="linked", before={}, after=controls_of(link))
        _tell_both(link, NotificationKind.GUARDIAN_LINKED, by=guardian, data={"controls": controls_of(link)})
    return link


def set_controls(*, guardian: User, teen_username: str, **changes) -> GuardianLink:
    """Sets the controls named in `changes` (the others keep their value) on the guardian's teen,
    and applies them at once (`_apply`). 404 for anyone who is not the teen's guardian; 403
    `not_a_minor` once the teen has come of age (the link then only waits to be ended)."""
    with transaction.atomic():
        link = selectors.guardian_link_of(guardian=guardian, teen_username=teen_username, lock=True)
        if not link.teen.is_minor:
            raise Forbidden("Controls apply to minors only.", code="not_a_minor")
        before = controls_of(link)
        for name in CONTROL_FIELDS:
            if name in changes:
                setattr(link, name, changes[name])
        after = controls_of(link)
        changed = [name for name in CONTROL_FIELDS if before[name] != after[name]]
        if not changed:
            return link
        link.updated_at = timezone.now()
        link.save()
        _apply(link, changed, actor=guardian)
        before = {name: before[name] for name in changed}
        after = {name: after[name] for name in changed}
        _record(link, actor=guardian, action="controls_changed", before=before, after=after)
        _tell_both(
            link,
            NotificationKind.GUARDIAN_CONTROLS_CHANGED,
            by=guardian,
            data={"before": before, "after": after},
        )
    return link


def _apply(link: GuardianLink, changed: list[str], *, actor: User) -> None:
    """What a change of controls does beyond the feed, which reads them on every request."""
    if "remix_of_my_posts" in changed and not link.remix_of_my_posts:
        # Every post of the teen, not only those that allow remixing now: an edit turning it on
        # meanwhile holds its post, so this waits for it and turns it off again (a condition on
        # remix_allowed would pass that post by).
        Post.objects.filter(author_id=link.teen_id).update(remix_allowed=False)
    if "cameo_permission_cap" in changed:
        hooks.run_cameo_cap_set(link.teen, link.cameo_permission_cap, actor)


def unlink_teen(*, guardian: User, teen_username: str) -> None:
    """The guardian ends the link; 404 for anyone who is not the teen's guardian."""
    with transaction.atomic():
        link = selectors.guardian_link_of(guardian=guardian, teen_username=teen_username, lock=True)
        _unlink(link, actor=guardian)


def unlink_guardian(*, teen: User) -> None:
    """The teen ends the link (at any age); 404 when they have no guardian."""
    with transaction.atomic():
        link = (
            GuardianLink.objects.select_for_update(of=("self",))
            .select_related("teen", "guardian")
            .filter(teen_id=teen.pk)
            .first()
        )
        if link is None:
            raise NotFound("You have no guardian.")
        _unlink(link, actor=teen)


def end_links_of_deleted_account(user: User) -> None:
    """An account being deleted takes its guardian links with it: the other side of each is told,
    without an actor (the account is gone with its notifications' rows), and the teen's trail
    keeps the end while the teen's account lives. Inside `delete_account`'s transaction."""
    links = GuardianLink.objects.select_related("teen", "guardian").filter(
        Q(teen_id=user.pk) | Q(guardian_id=user.pk)
    )
    for link in links:
        other, role = (link.guardian, "guardian") if link.teen_id == user.pk else (link.teen, "teen")
        _record(link, actor=user, action="account_deleted", before=controls_of(link), after={})
        notify(
            user=other,
            kind=NotificationKind.GUARDIAN_UNLINKED,
            data={"role": role, "by": user.username, "reason": "account_deleted"},
        )


def _unlink(link: GuardianLink, *, actor: User) -> None:
    before = controls_of(link)
    link.delete()
    _record(link, actor=actor, action="unlinked", before=before, after={})
    _tell_both(link, NotificationKind.GUARDIAN_UNLINKED, by=actor, data={})


def _record(link: GuardianLink, *, actor: User, action: str, before: dict, after: dict) -> None:
    GuardianAudit.objects.create(
        teen_id=link.teen_id,
        guardian_id_value=link.guardian_id,
        actor_id_value=actor.pk,
        action=action,
        before=before,
        after=after,
    )


def _tell_both(link: GuardianLink, kind: str, *, by: User, data: dict) -> None:
    """A notification to each side, naming the other as its actor; `role` is the recipient's side
    and `by` who acted."""
    for recipient, other, role in (
        (link.teen, link.guardian, "teen"),
        (link.guardian, link.teen, "guardian"),
    ):
        notify(user=recipient, kind=kind, actor=other, data={**data, "role": role, "by": by.username})
