"""A guardian's control and the teen's opposite edit, raced: whichever commits first, the control
holds afterwards (the edit is refused, or made and then undone by the control), and neither
side deadlocks."""

import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from cameo import services as cameo_services
from cameo.identity import pad_template
from cameo.models import Cameo, CameoStatus, Permission
from social import guardians
from social import services as social_services
from social.models import GuardianLink, Post, PostStatus, User
from tests.races import Racer

RACES = 200


def teens_with_a_guardian(count):
    guardian = User.objects.create(
        username="race_guardian", birth_date=timezone.localdate().replace(year=1980)
    )
    birth_date = timezone.localdate() - timedelta(days=14 * 365)
    teens = User.objects.bulk_create(
        User(username=f"race_teen{n}", birth_date=birth_date) for n in range(count)
    )
    GuardianLink.objects.bulk_create(GuardianLink(teen=teen, guardian=guardian) for teen in teens)
    return guardian, teens


def race(items, teen_action, guardian_action):
    barrier = threading.Barrier(2)
    teen_side, guardian_side = Racer(items, barrier, teen_action), Racer(items, barrier, guardian_action)
    for racer in (teen_side, guardian_side):
        racer.start()
    for racer in (teen_side, guardian_side):
        racer.join(timeout=600)
    assert not teen_side.errors and not guardian_side.errors, teen_side.errors + guardian_side.errors
    assert set(guardian_side.outcomes) == {"ok"}
    return teen_side.outcomes


@pytest.mark.django_db(transaction=True)
def test_a_cameo_widened_while_the_cap_is_lowered_ends_under_the_cap():
    guardian, teens = teens_with_a_guardian(RACES)
    template = pad_template(np.ones(128, dtype=np.float32) / np.sqrt(128))
    cameos = Cameo.objects.bulk_create(
        Cameo(
            owner=teen,
            display_name="me",
            status=CameoStatus.ACTIVE,
            permission=Permission.APPROVED,
            template_vector=template,
            template_dim=128,
            encoder="dlib",
        )
        for teen in teens
    )

    def widen(item):
        teen, cameo, index = item
        # The edit is quicker than the change of controls: staggered, it also comes after it.
        time.sleep(index % 8 * 0.001)
        cameo_services.update_cameo(actor=teen, cameo=cameo, permission=Permission.MUTUALS)

    outcomes = race(
        [(teen, cameo, index) for index, (teen, cameo) in enumerate(zip(teens, cameos, strict=True))],
        widen,
        lambda item: guardians.set_controls(
            guardian=guardian, teen_username=item[0].username, cameo_permission_cap="approved"
        ),
    )
    assert set(outcomes) <= {"ok", "guardian_control"}
    permissions = set(
        Cameo.objects.filter(pk__in=[cameo.pk for cameo in cameos]).values_list("permission", flat=True)
    )
    assert permissions == {Permission.APPROVED}
    # Both orders happened, so the race was real.
    assert "ok" in outcomes and "guardian_control" in outcomes, outcomes.count("ok")


@pytest.mark.django_db(transaction=True)
def test_remixing_turned_on_while_the_guardian_turns_it_off_ends_off():
    guardian, teens = teens_with_a_guardian(RACES)
    now = timezone.now()
    posts = Post.objects.bulk_create(
        Post(author=teen, status=PostStatus.PUBLISHED, published_at=now, remix_allowed=False)
        for teen in teens
    )

    def turn_remixing_on(item):
        teen, post, index = item
        # The edit is quicker than the change of controls: staggered, it also comes after it.
        time.sleep(index % 8 * 0.001)
        social_services.update_post(actor=teen, post=post, remix_allowed=True)

    outcomes = race(
        [(teen, post, index) for index, (teen, post) in enumerate(zip(teens, posts, strict=True))],
        turn_remixing_on,
        lambda item: guardians.set_controls(
            guardian=guardian, teen_username=item[0].username, remix_of_my_posts=False
        ),
    )
    assert set(outcomes) <= {"ok", "guardian_control"}
    assert not Post.objects.filter(pk__in=[post.pk for post in posts], remix_allowed=True).exists()
    assert "ok" in outcomes and "guardian_control" in outcomes, outcomes.count("ok")
