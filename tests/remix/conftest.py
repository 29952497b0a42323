import itertools

import pytest
from django.utils import timezone

from remix import services
from remix.models import RightsHolder, RightsHolderMember
from social.models import Post, PostStatus

_names = itertools.count(1)


@pytest.fixture
def make_post(db):
    def make(author, *, status=PostStatus.PUBLISHED, remix_of=None, **fields):
        post = Post(
            author=author, status=status, prompt=fields.pop("prompt", "a quiet harbour at dawn"), **fields
        )
        if status == PostStatus.PUBLISHED:
            post.published_at = timezone.now()
        if remix_of is not None:
            post.remix_of = remix_of
            post.root_id = remix_of.chain_root_id
            post.depth = remix_of.depth + 1
        post.save()
        return post

    return make


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True)


@pytest.fixture
def make_holder(db):
    def make(admin, *, name=None, verified=True):
        holder = services.create_rights_holder(user=admin, name=name or f"Studio {next(_names)}")
        if verified:
            RightsHolder.objects.filter(pk=holder.pk).update(verified=True, verified_at=timezone.now())
            holder.refresh_from_db()
        return holder

    return make


@pytest.fixture
def make_ip(db):
    def make(holder, *, name=None, aliases=(), description="", **policy):
        admin = RightsHolderMember.objects.filter(rights_holder=holder, role="admin").first().user
        policy = {
            "status": "opted_in",
            "allow_cameos": False,
            "disallowed_themes": [],
            "revenue_share_bps": 0,
        } | policy
        return services.register_ip(
            actor=admin,
            rights_holder_id=holder.pk,
            name=name or f"Character {next(_names)}",
            aliases=list(aliases),
            description=description,
            policy=policy,
        )

    return make
