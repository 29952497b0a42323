"""The remix part of the demo that `make run` loads, run last.

A verified rights holder (Moonlight Studio, admin carol) with an opted-in character (Mochi), a remix
chain of three posts (the one the generation demo made when present, otherwise one made here from
alice's first demo post), a licence for Mochi on a post of the chain, and revenue events on the
chain, one of them refunded. Every step is idempotent: fixed names, content ids and event ids.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from remix import ledger, services
from remix.composition import compose_remix_prompt
from remix.ip import check_ip_use
from remix.models import IntellectualProperty, RightsHolder, RightsHolderMember
from social.models import Post, PostStatus, User

DEMO_NAMESPACE = uuid.UUID("3b0f8f1e-8a40-4d55-9d7e-5e2a1c6d7f21")
HOLDER_NAME = "Moonlight Studio"
CHARACTER = {
    "name": "Mochi",
    "aliases": ["Mochi the Cat", "モチ猫", "麻糬猫"],
    "description": "Mochi, a chubby white cartoon cat with round pink cheeks who loves eating rice cakes",
    "policy": {
        "status": "opted_in",
        "allow_cameos": True,
        "disallowed_themes": ["alcohol", "violence"],
        "revenue_share_bps": 1500,
    },
}
# (author, instruction, mode, colour) for each step of the chain after its root.
CHAIN_STEPS = [
    ("bob", "Mochi the cat surfs the last wave of the sunset", "remix", (255, 255, 255)),
    ("carol", "Mochi reaches the beach and eats a rice cake", "continue", (250, 180, 200)),
]
# (event id, index in the chain, amount in minor units, currency, kind)
DEMO_EVENTS = [
    ("demo-ad-1", 1, 12_500, "USD", "ad"),
    ("demo-tip-1", 2, 500, "USD", "tip"),
    ("demo-credit-1", 2, 3_000, "USD", "credit"),
    ("demo-ad-2", 0, 9_999, "USD", "ad"),
]
DEMO_REFUND = ("demo-refund-1", "demo-credit-1")


def _rights_holder(admin: User) -> RightsHolder:
    holder = RightsHolder.objects.filter(name=HOLDER_NAME).first()
    if holder is None:
        holder = services.create_rights_holder(user=admin, name=HOLDER_NAME)
    RightsHolderMember.objects.get_or_create(rights_holder=holder, user=admin, defaults={"role": "admin"})
    if not holder.verified:
        RightsHolder.objects.filter(pk=holder.pk).update(verified=True, verified_at=timezone.now())
        holder.refresh_from_db()
    return holder


def _character(holder: RightsHolder, admin: User) -> IntellectualProperty:
    existing = IntellectualProperty.objects.filter(rights_holder=holder, name=CHARACTER["name"]).first()
    if existing is not None:
        return existing
    return services.register_ip(actor=admin, rights_holder_id=holder.pk, **CHARACTER)


def _chain(users: dict[str, User]) -> list[Post]:
    """A remix chain of three: the deepest existing one if the generation demo made it, else ours."""
    deepest = Post.objects.filter(status=PostStatus.PUBLISHED, depth__gte=2).order_by("-depth", "id").first()
    if deepest is not None:
        chain = [deepest]
        while chain[0].remix_of_id and len(chain) < 3:
            chain.insert(0, chain[0].remix_of)
        return chain
    from social.demo import render_sample_video
    from social.services import create_post

    root = (
        Post.objects.filter(author=users["alice"], status=PostStatus.PUBLISHED, depth=0)
        .order_by("id")
        .first()
    )
    if root is None:
        return []
    chain = [root]
    with tempfile.TemporaryDirectory() as workdir:
        for index, (author, instruction, mode, colour) in enumerate(CHAIN_STEPS):
            content_id = uuid.uuid5(DEMO_NAMESPACE, f"remix-chain-{index}")
            post = Post.objects.filter(content_id=content_id).first()
            if post is None:
                video = render_sample_video(
                    Path(workdir) / f"remix-{index}.mp4", color=colour, seed=10 + index
                )
                post = create_post(
                    author=users[author],
                    video=video,
                    prompt=compose_remix_prompt(
                        source_prompt=chain[-1].prompt, instruction=instruction, mode=mode
                    ),
                    caption=instruction,
                    status="published",
                    remix_of=chain[-1],
                    content_id=content_id,
                    provider="reelforge-demo",
                )
            chain.append(post)
    return chain


def seed_remix_demo() -> dict:
    users = {user.username: user for user in User.objects.filter(username__in=["alice", "bob", "carol"])}
    if len(users) < 3:
        return {"events": 0}
    holder = _rights_holder(users["carol"])
    character = _character(holder, users["carol"])
    chain = _chain(users)
    if not chain:
        return {"events": 0}
    licensed = chain[min(1, len(chain) - 1)]
    uses = check_ip_use(
        user=licensed.author, prompt=f"{CHARACTER['name']} {licensed.prompt}", has_cameos=False
    )
    services.record_licences(post=licensed, uses=[use for use in uses if use.ip_id == character.pk])
    recorded = 0
    with transaction.atomic():
        for event_id, index, amount, currency, kind in DEMO_EVENTS:
            post = chain[min(index, len(chain) - 1)]
            ledger.record_revenue_event(
                event_id=event_id, post_id=post.pk, amount_minor=amount, currency=currency, kind=kind
            )
            recorded += 1
        refund_id, original_id = DEMO_REFUND
        original = next(event for event in DEMO_EVENTS if event[0] == original_id)
        ledger.record_revenue_event(
            event_id=refund_id,
            post_id=chain[min(original[1], len(chain) - 1)].pk,
            amount_minor=original[2],
            currency=original[3],
            kind="refund",
            reverses_event_id=original_id,
        )
    return {
        "rights_holder": holder.name,
        "ip": character.name,
        "chain": [p.pk for p in chain],
        "events": recorded + 1,
    }
