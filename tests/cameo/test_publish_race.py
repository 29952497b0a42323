"""Publishing a draft and narrowing the consent of a cameo in it, raced 1,000 times: the publish
either sees the narrowing (409) or commits before the narrowing begins."""

import threading

import numpy as np
import pytest

from cameo import services
from cameo.identity import pad_template
from cameo.models import Appearance, Cameo, CameoAudit, CameoStatus, Permission
from social import services as social_services
from social.models import Post, PostStatus
from tests.races import Racer

RACES = 1000


def race_material(owner, author, count):
    template = pad_template(np.ones(128, dtype=np.float32) / np.sqrt(128))
    cameos = Cameo.objects.bulk_create(
        Cameo(
            owner=owner,
            display_name=f"c{n}",
            status=CameoStatus.ACTIVE,
            permission=Permission.EVERYONE,
            template_vector=template,
            template_dim=128,
            encoder="dlib",
        )
        for n in range(count)
    )
    posts = Post.objects.bulk_create(
        Post(author=author, status=PostStatus.DRAFT, cameo_owner_ids=[owner.pk], prompt=f"p{n}")
        for n in range(count)
    )
    Appearance.objects.bulk_create(
        Appearance(post=post, cameo=cameo, consent_version=cameo.consent_version)
        for post, cameo in zip(posts, cameos, strict=True)
    )
    return list(zip(posts, cameos, strict=True))


@pytest.mark.django_db(transaction=True)
def test_publish_and_narrowing_are_ordered_by_the_cameo_rows(make_user):
    owner, author = make_user("race_owner"), make_user("race_author")
    races = race_material(owner, author, RACES)
    barrier = threading.Barrier(2)
    publisher = Racer(races, barrier, lambda race: social_services.publish_post(actor=author, post=race[0]))
    narrower = Racer(
        races,
        barrier,
        lambda race: services.update_cameo(actor=owner, cameo=race[1], permission=Permission.ONLY_ME),
    )
    for racer in (publisher, narrower):
        racer.start()
    for racer in (publisher, narrower):
        racer.join(timeout=600)
    assert not publisher.errors and not narrower.errors, publisher.errors + narrower.errors
    assert set(narrower.outcomes) == {"ok"}
    assert set(publisher.outcomes) <= {"ok", "consent_revoked"}

    narrowed_at = dict(
        CameoAudit.objects.filter(action="updated", cameo_id_value__in=[c.pk for _p, c in races]).values_list(
            "cameo_id_value", "at"
        )
    )
    published = {
        post.pk: post.published_at
        for post in Post.objects.filter(pk__in=[p.pk for p, _c in races], status=PostStatus.PUBLISHED)
    }
    for (post, cameo), outcome in zip(races, publisher.outcomes, strict=True):
        if outcome == "ok":
            # Published under the old consent: only if it committed before the narrowing began.
            assert published[post.pk] < narrowed_at[cameo.pk], (post.pk, cameo.pk)
        else:
            assert post.pk not in published
    # Both orders happened, so the race was real.
    assert "ok" in publisher.outcomes and "consent_revoked" in publisher.outcomes, publisher.outcomes.count(
        "ok"
    )
