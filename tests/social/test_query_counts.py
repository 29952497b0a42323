"""Every list endpoint costs a fixed number of queries, whatever the page size."""

import pytest

from social.models import User
from social.services import comment_on_post, follow_user, like_post, notify
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_world(make_user, make_post):
    viewer = make_user("viewer")
    authors = [make_user(f"writer{i}") for i in range(3)]
    for author in authors:
        follow_user(follower=viewer, followee=author)
    posts = [make_post(authors[i % 3], cameo_refs=[{"id": i, "owner_username": "x"}]) for i in range(12)]
    for index, post in enumerate(posts[:6]):
        like_post(user=viewer, post=post)
        comment_on_post(author=authors[index % 3], post=posts[0], text="hi")
    for i in range(12):
        notify(user=viewer, kind="generation_finished", actor=authors[i % 3], post=posts[i])
    return viewer, posts


# (path, queries, rows available): one query for the JWT's user, then the endpoint's own.
LIST_ENDPOINTS = [
    # following: the page, its authors and the viewer's likes in one statement.
    ("/api/v1/feed?tab=following", 2, 12),
    # for_you, first page: user, the shared pool (kept by the process for all viewers), what the
    # ranking needs to know of the viewer with the newest posts of the followed authors the process
    # does not keep, the page.
    ("/api/v1/feed?tab=for_you", 4, 12),
    ("/api/v1/users/writer0/posts", 3, 4),
    ("/api/v1/notifications", 2, 12),
    ("/api/v1/posts/{post}/comments", 3, 6),
]


@pytest.mark.parametrize(("path", "queries", "available"), LIST_ENDPOINTS)
@pytest.mark.parametrize("limit", [1, 10])
def test_list_query_count_does_not_grow_with_page_size(
    busy_world, django_assert_num_queries, path, queries, available, limit
):
    viewer, posts = busy_world
    client = client_for(viewer)
    url = path.format(post=posts[0].pk) + ("&" if "?" in path else "?") + f"limit={limit}"
    with django_assert_num_queries(queries):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(limit, available)
    if response.json()["next_cursor"]:
        # for_you's later pages read the chain's ranking from the cache: fewer queries, never more.
        with django_assert_num_queries(2 if "for_you" in path else queries):
            assert client.get(url + f"&cursor={response.json()['next_cursor']}").status_code == 200


@pytest.mark.parametrize("limit", [1, 10])
def test_for_you_first_page_reads_only_the_viewer_while_the_pools_are_kept(
    busy_world, make_user, django_assert_num_queries, limit
):
    viewer, _posts = busy_world
    # Another follower of the same authors fills the process's pools; the viewer's own first page
    # costs the same whether or not it finds their authors kept.
    other = make_user("other")
    for index in range(3):
        follow_user(follower=other, followee=User.objects.get(username=f"writer{index}"))
    assert client_for(other).get(f"/api/v1/feed?tab=for_you&limit={limit}").status_code == 200
    viewer_client = client_for(viewer)
    with django_assert_num_queries(3):  # user, the viewer, the page
        response = viewer_client.get(f"/api/v1/feed?tab=for_you&limit={limit}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == limit
