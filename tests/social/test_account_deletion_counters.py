"""Deleting an account takes what its rows added out of everyone else's counters, exactly."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from social.models import Comment, Follow, Like, Post, PostStatus, PostView, User
from social.services import delete_account, follow_user, like_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def stored_and_recounted_counters() -> tuple[dict, dict]:
    """Every post's and user's counters as stored, and as recounted from the rows they count."""
    likes = Counter(Like.objects.values_list("post_id", flat=True))
    comments = Counter(Comment.objects.values_list("post_id", flat=True))
    remixes = Counter(Post.objects.exclude(remix_of=None).values_list("remix_of_id", flat=True))
    views = Counter(PostView.objects.values_list("post_id", flat=True))
    followers = Counter(Follow.objects.values_list("followee_id", flat=True))
    following = Counter(Follow.objects.values_list("follower_id", flat=True))
    published = Counter(Post.objects.filter(status=PostStatus.PUBLISHED).values_list("author_id", flat=True))
    stored, recounted = {}, {}
    for post in Post.objects.all():
        stored[("post", post.pk)] = (post.like_count, post.comment_count, post.remix_count, post.view_count)
        recounted[("post", post.pk)] = (likes[post.pk], comments[post.pk], remixes[post.pk], views[post.pk])
    for user in User.objects.all():
        stored[("user", user.pk)] = (user.followers_count, user.following_count, user.posts_count)
        recounted[("user", user.pk)] = (followers[user.pk], following[user.pk], published[user.pk])
    return stored, recounted


def assert_counters_match_their_rows() -> None:
    stored, recounted = stored_and_recounted_counters()
    assert stored == recounted


def like(client, post) -> None:
    assert client.put(f"/api/v1/posts/{post.pk}/like").status_code == 204


def comment(client, post) -> None:
    response = client.post(f"/api/v1/posts/{post.pk}/comments", {"text": "hi"}, format="json")
    assert response.status_code == 201


def follow(client, username: str) -> None:
    assert client.put(f"/api/v1/users/{username}/follow").status_code == 204


def view(client, *posts) -> None:
    events = {"events": [{"post_id": str(post.pk), "watched_ms": 1000} for post in posts]}
    assert client.post("/api/v1/views", events, format="json").status_code == 202


POST_COUNTERS = ("like_count", "comment_count", "remix_count", "view_count")


def test_deleting_an_account_leaves_every_counter_equal_to_its_rows(make_user, make_post):
    dora, ann, ben, cat, dan = (make_user(name) for name in ("dora", "ann", "ben", "cat", "dan"))
    to = {user.username: client_for(user) for user in (dora, ann, ben, cat, dan)}
    ann_post, ben_post = make_post(ann), make_post(ben)
    dora_post = make_post(dora)
    dora_remix = make_post(dora, remix_of=ann_post)  # one in ann_post's remix_count
    ann_remix = make_post(ann, remix_of=dora_post)  # loses its parent with dora's post

    # What dora adds to other people's counters: likes, comments (two on one post), views, a
    # remix, follows both ways.
    for post in (ann_post, ben_post):
        like(to["dora"], post)
        comment(to["dora"], post)
    comment(to["dora"], ann_post)
    view(to["dora"], ann_post, ben_post, ann_remix)
    follow(to["dora"], "ann")
    follow(to["dora"], "ben")
    follow(to["cat"], "dora")
    follow(to["dan"], "dora")
    # What others add, to dora's posts (gone with them) and to each other's (stays).
    like(to["dora"], dora_post)
    for name in ("ann", "cat"):
        like(to[name], dora_post)
        comment(to[name], dora_post)
    like(to["ben"], ann_post)
    comment(to["cat"], ben_post)
    view(to["cat"], ann_post, dora_post)
    follow(to["cat"], "ann")
    follow(to["ann"], "cat")
    assert_counters_match_their_rows()

    assert to["dora"].delete("/api/v1/me").status_code == 204

    assert not Post.objects.filter(pk__in=[dora_post.pk, dora_remix.pk]).exists()
    assert_counters_match_their_rows()
    ann_post_now = to["ben"].get(f"/api/v1/posts/{ann_post.pk}").json()
    assert [ann_post_now[counter] for counter in POST_COUNTERS] == [1, 0, 0, 1]
    ben_post_now = to["ann"].get(f"/api/v1/posts/{ben_post.pk}").json()
    assert [ben_post_now[counter] for counter in POST_COUNTERS] == [0, 1, 0, 0]
    ann_remix.refresh_from_db()
    assert (ann_remix.remix_of_id, ann_remix.view_count) == (None, 0)
    profiles = {name: to["cat"].get(f"/api/v1/users/{name}").json() for name in ("ann", "ben", "cat", "dan")}
    assert {name: (p["followers_count"], p["following_count"]) for name, p in profiles.items()} == {
        "ann": (1, 1),  # cat follows ann, ann follows cat
        "ben": (0, 0),
        "cat": (1, 1),
        "dan": (0, 0),
    }


def test_a_view_counts_once_per_day_and_each_day_is_taken_back(make_user, make_post):
    viewer, author = make_user("viewer"), make_user("author")
    post = make_post(author)
    view(client_for(viewer), post)
    PostView.objects.update(day=timezone.now().date() - timedelta(days=1))
    view(client_for(viewer), post)
    view(client_for(make_user("other")), post)
    post.refresh_from_db()
    assert post.view_count == 3

    delete_account(user=viewer)

    post.refresh_from_db()
    assert post.view_count == 1
    assert_counters_match_their_rows()


def test_a_counter_that_drifted_low_stops_at_zero_and_the_account_still_goes(make_user, make_post):
    fan, author = make_user("fan"), make_user("author")
    post = make_post(author)
    like_post(user=fan, post=post)
    follow_user(follower=fan, followee=author)
    Post.objects.filter(pk=post.pk).update(like_count=0)
    User.objects.filter(pk=author.pk).update(followers_count=0)

    delete_account(user=fan)

    post.refresh_from_db()
    author.refresh_from_db()
    assert (post.like_count, author.followers_count) == (0, 0)
    assert not User.objects.filter(pk=fan.pk).exists()


def statements_to_delete(user) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        delete_account(user=user)
    return [query["sql"] for query in queries.captured_queries]


def test_the_statements_of_a_deletion_do_not_grow_with_its_likes_comments_views_and_follows(
    make_user, make_post
):
    authors = [make_user(f"author{i}") for i in range(20)]
    posts = [make_post(author) for author in authors]
    few, many = make_user("few"), make_user("many")
    for user, n in ((few, 1), (many, 20)):
        client = client_for(user)
        for post in posts[:n]:
            like_post(user=user, post=post)
            comment(client, post)
        view(client, *posts[:n])
        for author in authors[:n]:
            follow_user(follower=user, followee=author)
            follow_user(follower=author, followee=user)

    few_statements, many_statements = statements_to_delete(few), statements_to_delete(many)

    assert len(few_statements) == len(many_statements), (few_statements, many_statements)
    assert_counters_match_their_rows()
    assert {post.like_count for post in Post.objects.all()} == {0}
