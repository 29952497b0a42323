"""`@handle` mentions: what counts as one, resolving them, and the prompt written out."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cameo.mentions import (
    MAX_CAMEOS_PER_JOB,
    compose_cameo_prompt,
    describe_cameo,
    find_mentions,
    mentioned_cameos,
    resolve_mentions,
)
from cameo.models import HANDLE_PATTERN, Cameo, CameoKind, CameoStatus
from core.errors import RuleRefusal


@pytest.mark.parametrize(
    ("prompt", "handles"),
    [
        ("@rex chases @alice.", ["rex", "alice"]),  # a full stop ends the handle
        ("@Rex, @REX and @rex", ["rex"]),  # case-insensitive, distinct, first-mention order
        ("(@rex) & [@mia]!", ["rex", "mia"]),
        ("hi,@rex", ["rex"]),
        ("和@rex一起跳舞", ["rex"]),  # no space needed around a mention in Chinese
        ("@rex.the.dog. Then", ["rex.the.dog"]),
        ("@rex's ball", ["rex"]),
        ("mail ana@example.com", []),  # inside an address
        ("a.b@c.d and x_y@rex", []),
        ("@bob.smith@example.com", []),  # an address starting with @ is no mention either
        ("see medium.com/@rex", []),
        ("@@rex", []),
        ("@ab is too short", []),
        ("@" + "x" * 31, []),
        ("no mention at all", []),
    ],
)
def test_what_is_a_mention(prompt, handles):
    assert find_mentions(prompt) == handles


handles = st.from_regex(HANDLE_PATTERN, fullmatch=True)


@given(
    handle=handles,
    before=st.sampled_from(["", " ", "(", "，", "和", "\n"]),
    after=st.sampled_from(["", ".", "!", " x", "'s", "一"]),
)
def test_any_handle_is_found_where_it_stands_alone(handle, before, after):
    assert find_mentions(f"{before}@{handle}{after}") == [handle]
    assert find_mentions(f"{before}@{handle.upper()}{after}") == [handle]


@given(handle=handles, local=st.from_regex(r"[a-z0-9_.+\-]{1,10}", fullmatch=True))
def test_no_address_is_a_mention(handle, local):
    assert find_mentions(f"write to {local}@{handle}.com or @{handle}@example.com") == []


def test_more_than_three_cameos_are_refused():
    assert find_mentions("@aaa @bbb @ccc @aaa @AAA") == ["aaa", "bbb", "ccc"]
    with pytest.raises(RuleRefusal) as refused:
        find_mentions("@aaa @bbb @ccc @ddd")
    assert refused.value.status_code == 422 and refused.value.code == "too_many_cameos"
    assert refused.value.details == {"max": MAX_CAMEOS_PER_JOB, "mentioned": ["aaa", "bbb", "ccc", "ddd"]}


def cameo(owner, handle, **fields) -> Cameo:
    fields.setdefault("kind", CameoKind.CHARACTER)
    fields.setdefault("reference_images", ["cameos/none.png"])
    fields.setdefault("status", CameoStatus.ACTIVE)
    return Cameo.objects.create(
        owner=owner, handle=handle, display_name=fields.pop("name", handle.title()), **fields
    )


@pytest.mark.django_db
def test_mentions_resolve_in_order_in_one_query(make_user, django_assert_num_queries):
    owner = make_user("owner")
    rex, mia = cameo(owner, "rex"), cameo(owner, "mia")
    with django_assert_num_queries(1):
        found = mentioned_cameos("@Mia meets @rex and @mia again")
    assert [c.pk for c in found] == [mia.pk, rex.pk]
    assert found[0].owner.username == "owner"  # fetched with the owner


@pytest.mark.django_db
def test_an_unknown_mention_is_422_naming_it(make_user):
    owner = make_user("owner")
    cameo(owner, "rex")
    erased = cameo(owner, "ghost", status=CameoStatus.DELETED, reference_images=[])
    Cameo.objects.filter(pk=erased.pk).update(handle=None)  # as erasure leaves it
    for prompt, missing in [("@rex and @nobody", "nobody"), ("@ghost", "ghost")]:
        with pytest.raises(RuleRefusal) as refused:
            mentioned_cameos(prompt)
        assert refused.value.status_code == 422
        assert (refused.value.code, refused.value.details) == ("unknown_mention", {"handle": missing})


@pytest.mark.django_db
def test_resolving_is_not_authorising(make_user):
    """A cameo its owner keeps to themselves still resolves: whether the requester may use it is
    `cameo.lineage`'s decision (403 `cameo_not_permitted`), as for `cameo_ids`."""
    private = cameo(make_user("owner"), "secret", permission="only_me")
    assert resolve_mentions(handles=["secret"]) == [private]


@pytest.mark.django_db
def test_the_composed_prompt_describes_each_mention_as_its_owner_does(make_user):
    owner = make_user("owner")
    rex = cameo(owner, "rex", name="Rex", instructions="a golden retriever with a red collar.")
    alice = cameo(
        owner,
        "alice",
        name="Alice",
        kind=CameoKind.PERSON,
        instructions="wearing a red scarf",
        status=CameoStatus.PROCESSING,  # an active person needs a template; not what is tested
        reference_images=[],
    )
    plain = cameo(owner, "mia", name="Mia")
    prompt = "@rex chases @Alice on the beach, then @REX sleeps next to @mia; write to a@rex.com"
    composed = compose_cameo_prompt(prompt, [rex, alice, plain])
    assert composed == (
        "Rex (a golden retriever with a red collar) chases Alice (wearing a red scarf) on the beach, "
        "then Rex sleeps next to Mia; write to a@rex.com"
    )
    assert describe_cameo(plain) == "Mia"
    # a mention of a cameo not given stays as written
    assert (
        compose_cameo_prompt("@rex and @mia", [rex]) == "Rex (a golden retriever with a red collar) and @mia"
    )
