"""Checks and hooks that higher apps register with the social app, which may not import them.

`register_publish_check(fn)`: before a draft is published every registered `fn(post)` runs, inside
the publishing transaction with the post row locked; a check refuses by raising an `ApiError`
(the cameo app refuses with 409 `consent_revoked` when a cameo's consent no longer holds).

`register_posts_leaving(fn)`: `fn(post_ids)` runs inside the transaction that takes posts down or
deletes them (one post, or every post of an account being deleted, in one call), before their rows
go (the cameo app takes their appearances out of trending).

`register_cameo_cap_set(fn)`: `fn(teen, cap, actor)` runs inside the transaction in which a guardian
sets the widest permission their teen's cameos may have (social.guardians), with the guardian's
link locked; the cameo app lowers each of the teen's cameos that is wider, through its own consent
change (consent version, audit, jobs relying on the old consent blocked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from social.models import Post, User

PublishCheck = Callable[["Post"], None]
PostsLeaving = Callable[[list[int]], object]
CameoCapSet = Callable[["User", str, "User"], object]

_publish_checks: list[PublishCheck] = []
_posts_leaving: list[PostsLeaving] = []
_cameo_cap_set: list[CameoCapSet] = []


def register_publish_check(check: PublishCheck) -> PublishCheck:
    """Adds `check` once (so it can be called from AppConfig.ready); usable as a decorator."""
    if check not in _publish_checks:
        _publish_checks.append(check)
    return check


def unregister_publish_check(check: PublishCheck) -> None:
    if check in _publish_checks:
        _publish_checks.remove(check)


def run_publish_checks(post: Post) -> None:
    for check in list(_publish_checks):
        check(post)


def register_posts_leaving(hook: PostsLeaving) -> PostsLeaving:
    """Adds `hook` once (so it can be called from AppConfig.ready)."""
    if hook not in _posts_leaving:
        _posts_leaving.append(hook)
    return hook


def run_posts_leaving(post_ids: list[int]) -> None:
    if post_ids:
        for hook in list(_posts_leaving):
            hook(post_ids)


def register_cameo_cap_set(hook: CameoCapSet) -> CameoCapSet:
    """Adds `hook` once (so it can be called from AppConfig.ready)."""
    if hook not in _cameo_cap_set:
        _cameo_cap_set.append(hook)
    return hook


def run_cameo_cap_set(teen: User, cap: str, actor: User) -> None:
    for hook in list(_cameo_cap_set):
        hook(teen, cap, actor)
