"""Remix rights, `GET /posts/{id}/remixes` and `GET /posts/{id}/lineage`."""

import pytest

from core.errors import ApiError
from remix.services import check_remix_allowed
from social.models import Block, PostStatus
from tests.conftest import client_for


@pytest.fixture
def chain(make_user, make_post):
    """root <- second <- third <- fourth, each by another author."""
    authors = [make_user(f"teller{n}") for n in range(4)]
    posts = [make_post(authors[0])]
    for author in authors[1:]:
        posts.append(make_post(author, remix_of=posts[-1]))
    return authors, posts


def refusal(user, post):
    with pytest.raises(ApiError) as refused:
        check_remix_allowed(user=user, source_post=post)
    return refused.value.status_code, refused.value.code


def test_remix_rights(make_user, make_post):
    author, other = make_user("maker"), make_user("remixer")
    post = make_post(author)
    assert check_remix_allowed(user=other, source_post=post).pk == post.pk
    post.remix_allowed = False
    post.save()
    assert refusal(other, post) == (403, "remix_not_allowed")
    assert check_remix_allowed(user=author, source_post=post.pk).pk == post.pk  # authors may remix their own
    draft = make_post(author, status=PostStatus.DRAFT)
    assert refusal(other, draft) == (404, "not_found")
    Block.objects.create(blocker=author, blocked=other)
    post.remix_allowed = True
    post.save()
    assert refusal(other, post) == (404, "not_found")


def test_a_draft_visible_to_a_cameo_owner_is_still_not_remixable(make_user, make_post):
    author, owner = make_user("drafter"), make_user("cameo_owner")
    draft = make_post(author, status=PostStatus.DRAFT, cameo_owner_ids=[owner.pk])
    assert refusal(owner, draft) == (403, "remix_not_allowed")


def test_lineage_lists_ancestors_root_first_in_a_fixed_number_of_queries(
    chain, make_user, django_assert_num_queries
):
    authors, posts = chain
    client = client_for(make_user("reader"))
    with django_assert_num_queries(4):  # user, the post, the walk up, the ancestors
        body = client.get(f"/api/v1/posts/{posts[3].pk}/lineage").json()
    assert [item["id"] for item in body["ancestors"]] == [str(p.pk) for p in posts[:3]]
    assert body["depth"] == 3
    assert body["ancestors"][1]["root_id"] == str(posts[0].pk)
    with django_assert_num_queries(4):
        assert client.get(f"/api/v1/posts/{posts[2].pk}/lineage").json()["depth"] == 2
    assert client.get(f"/api/v1/posts/{posts[0].pk}/lineage").json() == {"ancestors": [], "depth": 0}


def test_lineage_leaves_out_ancestors_the_viewer_may_not_see(chain, make_user):
    authors, posts = chain
    reader = make_user("blocked_reader")
    Block.objects.create(blocker=authors[1], blocked=reader)
    body = client_for(reader).get(f"/api/v1/posts/{posts[3].pk}/lineage").json()
    assert [item["id"] for item in body["ancestors"]] == [str(posts[0].pk), str(posts[2].pk)]
    assert client_for(reader).get(f"/api/v1/posts/{posts[1].pk}/lineage").status_code == 404


def test_remixes_lists_visible_children_with_a_pinned_query_count(
    make_user, make_post, django_assert_num_queries
):
    source = make_post(make_user("origin_author"))
    remixers = [make_user(f"kid{n}") for n in range(5)]
    for remixer in remixers:
        make_post(remixer, remix_of=source)
    make_post(remixers[0], remix_of=source, status=PostStatus.DRAFT)  # another's draft: not listed
    viewer = make_user("watcher")
    client = client_for(viewer)
    for limit in (2, 5):
        with django_assert_num_queries(3):  # user, the source, the page
            page = client.get(f"/api/v1/posts/{source.pk}/remixes?limit={limit}").json()
        assert len(page["results"]) == limit
    first = client.get(f"/api/v1/posts/{source.pk}/remixes?limit=3").json()
    rest = client.get(f"/api/v1/posts/{source.pk}/remixes?limit=3&cursor={first['next_cursor']}").json()
    ids = [p["id"] for p in first["results"] + rest["results"]]
    assert len(ids) == len(set(ids)) == 5 and rest["next_cursor"] is None
    assert all(p["remix_of"] == str(source.pk) for p in first["results"])
    assert (
        client_for(remixers[0]).get(f"/api/v1/posts/{source.pk}/remixes?limit=50").json()["results"].__len__()
        == 6
    )


def test_remix_lists_of_invisible_posts_are_404(make_user, make_post, api):
    draft = make_post(make_user("secret_author"), status=PostStatus.DRAFT)
    client = client_for(make_user("stranger"))
    assert client.get(f"/api/v1/posts/{draft.pk}/remixes").status_code == 404
    assert client.get(f"/api/v1/posts/{draft.pk}/lineage").status_code == 404
    assert api.get(f"/api/v1/posts/{draft.pk}/lineage").status_code == 401
