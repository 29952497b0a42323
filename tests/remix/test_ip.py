"""IP detection in prompts, licence checks and licence records."""

import pytest

from core.errors import ApiError
from remix import services
from remix.ip import check_ip_use, detect_ip
from remix.models import IpLicence, IpPolicy

MOCHI_DESCRIPTION = "Mochi, a chubby white cartoon cat with round pink cheeks who loves eating rice cakes"


@pytest.fixture
def studio(make_user, make_holder):
    admin = make_user("studio_admin")
    return make_holder(admin, name="Round Cheeks Studio")


@pytest.fixture
def mochi(studio, make_ip):
    return make_ip(
        studio, name="Mochi", aliases=["モチ猫", "麻糬猫", "Mochi the Cat"], description=MOCHI_DESCRIPTION
    )


def mentioned(prompt):
    return [(m.ip.name, m.how) for m in detect_ip(prompt)]


@pytest.mark.parametrize(
    "prompt",
    [
        "mochi dancing in the rain",
        "MOCHI dancing",
        "Ｍｏｃｈｉ dancing",  # full-width letters
        "a video of mochi.",
        "モチ猫が走る",  # Japanese: no spaces around the alias
        "我想看麻糬猫跳舞",  # Chinese
        "ﾓﾁ猫",  # half-width katakana
    ],
)
def test_aliases_match_ignoring_case_and_width(mochi, prompt):
    assert mentioned(prompt) == [("Mochi", "alias")]


@pytest.mark.parametrize(
    "prompt", ["mochizuki walks the dog", "the kamochi river at night", "sunset over a lake"]
)
def test_aliases_respect_word_boundaries_in_spaced_scripts(mochi, prompt):
    assert mentioned(prompt) == []


def test_a_description_of_the_character_is_found_by_meaning(mochi):
    assert mentioned("chubby cartoon kitty munching on rice cakes") == [("Mochi", "semantic")]
    assert mentioned("white kitten playing with yarn") == []


def test_ip_of_unverified_rights_holders_is_not_looked_for(mochi, make_user, make_holder, make_ip):
    squatter = make_holder(make_user("squatter"), verified=False)
    from remix.models import IntellectualProperty, IpPolicy, RightsHolder

    ip = IntellectualProperty.objects.create(rights_holder=squatter, name="Cat")
    ip.current_policy = IpPolicy.objects.create(ip=ip, version=1, status="opted_out")
    ip.save()
    assert RightsHolder.objects.get(pk=squatter.pk).verified is False
    assert mentioned("a cat on a roof") == []


def test_licensed_use_returns_the_policy_version(mochi, user):
    uses = check_ip_use(user=user, prompt="Mochi eats a rice cake", has_cameos=False)
    assert [(u.ip_id, u.policy_version, u.policy_id) for u in uses] == [
        (mochi.pk, 1, mochi.current_policy_id)
    ]
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"revenue_share_bps": 900})
    uses = check_ip_use(user=user, prompt="Mochi eats a rice cake", has_cameos=False)
    assert uses[0].policy_version == 2


def refusal(user, prompt, *, has_cameos=False):
    with pytest.raises(ApiError) as refused:
        check_ip_use(user=user, prompt=prompt, has_cameos=has_cameos)
    assert refused.value.status_code == 422
    assert refused.value.code == "ip_not_licensed"
    return refused.value.details


def test_opted_out_ip_is_refused_except_to_its_own_members(mochi, user, studio):
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"status": "opted_out"})
    details = refusal(user, "mochi at the beach")
    assert details["ip"] == str(mochi.pk) and details["reason"] == "opted_out"
    admin = studio.memberships.get().user
    assert len(check_ip_use(user=admin, prompt="mochi at the beach", has_cameos=False)) == 1


def test_cameos_are_refused_unless_the_policy_allows_them(mochi, user):
    assert refusal(user, "me hugging Mochi", has_cameos=True)["reason"] == "cameos_not_allowed"
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"allow_cameos": True})
    assert len(check_ip_use(user=user, prompt="me hugging Mochi", has_cameos=True)) == 1


def test_disallowed_themes_go_through_the_theme_matcher(mochi, user):
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"disallowed_themes": ["alcohol"]})
    details = refusal(user, "Mochi drinking beer at a bar")
    assert details["reason"] == "disallowed_theme" and details["theme"] == "alcohol"
    assert len(check_ip_use(user=user, prompt="Mochi drinking milk", has_cameos=False)) == 1


def test_every_policy_change_is_a_new_version_and_no_change_is_none(mochi):
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"revenue_share_bps": 100})
    services.update_ip(actor=None, ip_id=mochi.pk, policy={"revenue_share_bps": 100})
    services.update_ip(actor=None, ip_id=mochi.pk, name="Mochi Cat")
    versions = list(
        IpPolicy.objects.filter(ip=mochi).order_by("version").values_list("version", "revenue_share_bps")
    )
    assert versions == [(1, 0), (2, 100)]


def test_record_licences_links_post_ip_and_policy_and_fills_ip_refs(mochi, user, make_post, studio):
    post = make_post(user)
    uses = check_ip_use(user=user, prompt="Mochi naps", has_cameos=False)
    services.record_licences(post=post, uses=uses)
    services.record_licences(post=post, uses=uses)  # idempotent
    licence = IpLicence.objects.get(post=post)
    assert (licence.ip_id, licence.policy_id) == (mochi.pk, mochi.current_policy_id)
    post.refresh_from_db()
    assert post.ip_refs == [
        {"id": str(mochi.pk), "name": "Mochi", "rights_holder": {"id": str(studio.pk), "name": studio.name}}
    ]
    assert services.record_licences(post=post, uses=[]) == []
