from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from core.pagination import encode_cursor
from social import feed
from social.feed import (
    AuthorsNewest,
    Candidates,
    _candidates_from_pool,
    _continuation,
    _first_page_viewer,
    decode_chain_cursor,
    encode_chain_cursor,
    pack_post_ids,
    recent_pool,
    recent_rankings,
    spread_authors,
    unpack_post_ids,
)
from social.models import Post
from social.selectors import feed_viewer
from social.services import block_user, follow_user, like_post, report_post, unfollow_user
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _chain(client, tab, *, limit, between_pages=None, max_pages=50):
    """Follows next_cursor to the end; returns the pages of post dicts."""
    pages, cursor = [], None
    for _ in range(max_pages):
        url = f"/api/v1/feed?tab={tab}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.json()
        body = response.json()
        pages.append(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        if between_pages:
            between_pages(len(pages))
    raise AssertionError("the chain did not end")


@pytest.fixture
def crowd(make_user, make_post):
    """Four authors with uneven output (one prolific), published over the last two days."""
    viewer = make_user("viewer")
    authors = [make_user(f"author{i}") for i in range(4)]
    posts = []
    now = timezone.now()
    for index in range(20):
        author = authors[0] if index % 2 == 0 else authors[1 + index % 3]
        post = make_post(author, caption=f"p{index}")
        Post.objects.filter(pk=post.pk).update(published_at=now - timedelta(hours=index * 2))
        posts.append(post)
    return viewer, authors, posts


def test_for_you_never_repeats_while_posts_arrive_and_spreads_authors(crowd, make_post):
    viewer, authors, posts = crowd
    arrived = []

    def publish_more(page_number):
        arrived.append(make_post(authors[page_number % 4], caption=f"new{page_number}"))

    pages = _chain(client_for(viewer), "for_you", limit=3, between_pages=publish_more)
    served = [post["id"] for page in pages for post in page]
    assert len(served) == len(set(served)), "a post was served twice in one chain"
    assert set(served) == {str(p.pk) for p in posts}, "posts that existed at the start were skipped"
    assert not {str(p.pk) for p in arrived} & set(served), "posts newer than the chain entered it"
    authors_in_order = [post["author"]["username"] for page in pages for post in page]
    # author0 wrote 10 of 20 posts: alternating is possible until the others run out.
    neighbours_same = sum(a == b for a, b in zip(authors_in_order, authors_in_order[1:], strict=False))
    others_left = [authors_in_order[i + 1 :] for i in range(len(authors_in_order) - 1)]
    for i, (a, b) in enumerate(zip(authors_in_order, authors_in_order[1:], strict=False)):
        if a == b:
            assert set(others_left[i]) == {a}, f"neighbours by {a} at {i} while another author was left"
    assert neighbours_same <= 1
    fresh = client_for(viewer).get("/api/v1/feed?tab=for_you&limit=50").json()["results"]
    assert {str(p.pk) for p in arrived} <= {post["id"] for post in fresh}


def test_for_you_hides_blocked_reported_and_own_posts(crowd, make_post):
    viewer, authors, posts = crowd
    own = make_post(viewer)
    block_user(blocker=authors[1], blocked=viewer)
    reported = next(p for p in posts if p.author_id == authors[2].pk)
    report_post(reporter=viewer, post=reported, reason="nope")
    pages = _chain(client_for(viewer), "for_you", limit=7)
    seen_authors = {post["author"]["username"] for page in pages for post in page}
    assert seen_authors == {"author0", "author3"}
    assert str(own.pk) not in {post["id"] for page in pages for post in page}


def test_for_you_ranks_affinity_and_engagement(make_user, make_post):
    viewer = make_user("viewer")
    followed, liked, plain = make_user("followed"), make_user("liked"), make_user("plain")
    follow_user(follower=viewer, followee=followed)
    old_liked = make_post(liked)
    like_post(user=viewer, post=old_liked)
    plain_post = make_post(plain)
    followed_post = make_post(followed)
    liked_new = make_post(liked)
    Post.objects.filter(pk=old_liked.pk).update(published_at=timezone.now() - timedelta(days=30))
    order = [p["id"] for p in client_for(viewer).get("/api/v1/feed?tab=for_you").json()["results"]]
    assert (
        order.index(str(followed_post.pk)) < order.index(str(liked_new.pk)) < order.index(str(plain_post.pk))
    )
    assert order[-1] == str(old_liked.pk)


def test_for_you_favours_the_remix_chains_of_recent_likes(make_user, make_post):
    """A like remembers its post's author and chain root; liking a remix lifts the rest of its
    chain (the root and other remixes) above an equal post outside it."""
    from social.models import Like

    viewer, chain_author, remixer, third, other = (
        make_user(name) for name in ("viewer", "chain", "remixer", "third", "other")
    )
    root = make_post(chain_author)
    liked_remix = make_post(remixer, remix_of=root)
    # By an author the viewer never liked, so only the chain can lift it.
    sibling = make_post(third, remix_of=liked_remix)
    outside = make_post(other)
    like_post(user=viewer, post=liked_remix)
    like = Like.objects.get(user=viewer, post=liked_remix)
    assert (like.post_author_id, like.post_root_id) == (remixer.pk, root.pk)
    like_post(user=viewer, post=root)
    assert Like.objects.get(user=viewer, post=root).post_root_id == root.pk
    # Same age and engagement for the two posts compared.
    Post.objects.filter(pk__in=[sibling.pk, outside.pk]).update(
        published_at=timezone.now() - timedelta(hours=1)
    )
    order = [p["id"] for p in client_for(viewer).get("/api/v1/feed?tab=for_you").json()["results"]]
    assert order.index(str(sibling.pk)) < order.index(str(outside.pk))


def test_member_of_agrees_with_isin():
    from social.feed import member_of

    rng = np.random.default_rng(3)
    for members_size in (0, 1, 7, 300):
        values, members = rng.integers(0, 50, 200), rng.integers(0, 50, members_size)
        assert member_of(values, members).tolist() == np.isin(values, members).tolist()


def test_rank_follows_the_documented_formula():
    """The vectorised ranking against the module docstring's formula written out per post."""
    import math
    import random

    from social.feed import Candidates, ViewerAffinity, rank

    snapshot = timezone.now()
    rng = random.Random(7)
    rows = [
        (
            post_id,
            rng.choice([10, 11, 12, 13]),  # author
            rng.choice([post_id, 500, 501]),  # chain root
            snapshot.timestamp() - rng.uniform(0, 96 * 3600),
            rng.randint(0, 50),
            rng.randint(0, 10),
            rng.randint(0, 5),
            rng.randint(0, 500),
            rng.random() < 0.5,
        )
        for post_id in range(1, 41)
    ]
    liked_authors = [11, 11, 12, 11, 11, 11, 11]  # 11 six times: capped at 5
    affinity = ViewerAffinity(
        followed_author_ids=np.array([10]),
        liked_author_ids=np.array([11, 12]),
        liked_posts_per_author=np.array([6, 1]),
        liked_root_ids=np.array([500]),
    )

    def score(row):
        post_id, author, root, published, likes, comments, remixes, views, remix_allowed = row
        freshness = 0.5 ** (max(0.0, snapshot.timestamp() - published) / 3600 / 24)
        engagement = (likes + 2 * comments + 3 * remixes + 1) / (views + 10)
        author_affinity = (
            1
            + (1.0 if author == 10 else 0)
            + 0.5 * min(liked_authors.count(author), 5) / 5
            + (0.5 if root == 500 else 0)
        )
        remixability = 1 + (0.2 if remix_allowed else 0) + 0.1 * math.log1p(remixes)
        return freshness * engagement * author_affinity * remixability

    expected = sorted(rows, key=lambda row: (score(row), row[0]), reverse=True)
    columns = [list(column) for column in zip(*rows, strict=True)]
    ranking = rank(
        Candidates.from_columns(columns, snapshot=snapshot), affinity=affinity, may_have_more=False
    )
    assert ranking.post_ids.tolist() == [row[0] for row in expected]
    assert ranking.author_ids.tolist() == [row[1] for row in expected]
    served = np.sort(np.array([expected[0][0], expected[5][0]], dtype=np.int64))
    assert ranking.without(served).post_ids.tolist() == [
        row[0] for i, row in enumerate(expected) if i not in (0, 5)
    ]


def test_following_tab_ignores_a_follow_that_outlived_a_block(make_user, make_post):
    """follow_user and block_user at the same moment can leave a Follow beside a Block; the tab
    still shows nothing across the block."""
    from social.models import Block, Follow

    viewer, friend, blocked = make_user("viewer"), make_user("friend"), make_user("blocked")
    follow_user(follower=viewer, followee=friend)
    make_post(friend)
    make_post(blocked)
    Block.objects.create(blocker=blocked, blocked=viewer)
    Follow.objects.create(follower=viewer, followee=blocked)
    results = client_for(viewer).get("/api/v1/feed?tab=following").json()["results"]
    assert {post["author"]["username"] for post in results} == {"friend"}


def test_a_like_refused_for_another_reason_than_a_repeat_is_not_swallowed(make_user, make_post, monkeypatch):
    from django.db import IntegrityError

    from social.models import Like

    viewer, author = make_user("viewer"), make_user("author")
    post = make_post(author)
    assert like_post(user=viewer, post=post) is True
    assert like_post(user=viewer, post=post) is False  # already liked: nothing to do

    def broken_create(**fields):
        raise IntegrityError("null value in column violates not-null constraint")

    monkeypatch.setattr(Like.objects, "create", broken_create)
    with pytest.raises(IntegrityError):
        like_post(user=make_user("other"), post=post)


def test_spread_authors_takes_the_next_other_author():
    post_ids, author_ids = [1, 2, 3, 4, 5], [1, 1, 1, 2, 3]
    assert [x[0] for x in spread_authors(post_ids, author_ids, limit=5, previous_author_id=None)] == [
        1,
        4,
        2,
        5,
        3,
    ]
    assert [x[0] for x in spread_authors(post_ids, author_ids, limit=2, previous_author_id=1)] == [4, 1]
    # Only the last author is left: it is served rather than nothing.
    assert spread_authors([7, 8], [2, 2], limit=3, previous_author_id=2) == [(7, 2), (8, 2)]
    assert spread_authors([], [], limit=3, previous_author_id=None) == []


def test_for_you_chain_survives_a_lost_ranking_cache(crowd):
    """Pages reach other server processes (no ranking in memory: read from the cache) and the cache
    loses entries (recomputed): the chain still serves every candidate once."""
    from django.core.cache import cache

    from social.feed import recent_rankings

    viewer, _authors, posts = crowd
    client = client_for(viewer)

    def forget_rankings(page_number):
        recent_rankings.clear()
        if page_number % 2 == 0:
            cache.clear()

    pages = _chain(client, "for_you", limit=4, between_pages=forget_rankings)
    served = [post["id"] for page in pages for post in page]
    assert sorted(served) == sorted(str(p.pk) for p in posts)


@pytest.mark.parametrize(
    ("post_ids", "tag"),
    [
        ([], "2"),
        ([7], "2"),
        ([1, 2, 3, 65_536], "2"),
        ([1, 65_538], "4"),
        ([5, 2**33], "8"),
        ([2**62 + 1], "8"),
    ],
)
def test_served_ids_pack_into_the_narrowest_width_and_back(post_ids, tag):
    packed = pack_post_ids(np.array(post_ids, dtype=np.int64))
    assert packed[0] == tag
    assert unpack_post_ids(packed).tolist() == post_ids


def test_a_large_served_list_packs_small_and_malformed_packings_are_refused():
    served = np.unique(np.random.default_rng(3).integers(1, 1_000_000, 500))
    packed = pack_post_ids(served)
    assert np.array_equal(unpack_post_ids(packed), served)
    assert len(packed) < 3 * len(served)
    for malformed in ("", "x" + packed[1:], packed[:-1], "2@@@@"):
        with pytest.raises(ValueError):
            unpack_post_ids(malformed)


@pytest.mark.parametrize("served_as", ["json list", "packed"])
def test_for_you_continues_a_cursor_issued_before(crowd, served_as):
    """Cursors issued before carried the chain as signed JSON, the served ids as a list (before
    the packing) or packed; a client holding one across a deploy goes on without repeats."""
    viewer, _authors, posts = crowd
    client = client_for(viewer)
    first = client.get("/api/v1/feed?tab=for_you&limit=5").json()
    position = decode_chain_cursor(first["next_cursor"])
    served = position.served.tolist() if served_as == "json list" else pack_post_ids(position.served)
    cursor = encode_cursor({"t": position.snapshot.isoformat(), "s": served, "a": position.last_author_id})
    assert decode_chain_cursor(cursor).served.tolist() == position.served.tolist()
    pages = [first["results"]]
    while cursor:
        body = client.get(f"/api/v1/feed?tab=for_you&limit=5&cursor={cursor}").json()
        pages.append(body["results"])
        cursor = body["next_cursor"]
    served = [post["id"] for page in pages for post in page]
    assert sorted(served) == sorted(str(p.pk) for p in posts)


def test_for_you_refuses_a_signed_cursor_with_malformed_served_ids(auth_client):
    from social.feed import _chain_cursor_signer

    for cursor in (
        encode_cursor({"t": timezone.now().isoformat(), "s": "2@@@", "a": None}),
        _chain_cursor_signer().sign("1700000000000000..2@@@"),
        _chain_cursor_signer().sign("not a time.5.2AQA"),
    ):
        response = auth_client.get(f"/api/v1/feed?tab=for_you&cursor={cursor}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"


def test_for_you_cursor_is_signed_and_round_trips(crowd):
    """The chain cursor holds T to the microsecond, the served ids and the last author; a changed
    character breaks its signature (400), so a client cannot unserve posts or move T."""
    viewer, _authors, _posts = crowd
    client = client_for(viewer)
    first = client.get("/api/v1/feed?tab=for_you&limit=5").json()
    position = decode_chain_cursor(first["next_cursor"])
    assert sorted(position.served.tolist()) == sorted(int(post["id"]) for post in first["results"])
    assert position.last_author_id == int(first["results"][-1]["author"]["id"])
    again = decode_chain_cursor(encode_chain_cursor(position))
    assert again.snapshot == position.snapshot and again.served.tolist() == position.served.tolist()
    value, signature = first["next_cursor"].rsplit(":", 1)
    micros, author, packed = value.split(".", 2)
    for forged in (
        f"{int(micros) + 1}.{author}.{packed}",
        f"{micros}.{author}.{pack_post_ids(np.array([1]))}",
    ):
        response = client.get(f"/api/v1/feed?tab=for_you&cursor={forged}:{signature}")
        assert response.status_code == 400


def test_following_tab_is_newest_first_from_followed_only(make_user, make_post):
    viewer, friend, other = make_user("viewer"), make_user("friend"), make_user("other")
    follow_user(follower=viewer, followee=friend)
    friend_posts = [make_post(friend) for _ in range(5)]
    make_post(friend, status="draft")
    make_post(other)
    added = []
    pages = _chain(
        client_for(viewer),
        "following",
        limit=2,
        between_pages=lambda _n: added.append(make_post(friend)),
    )
    served = [post["id"] for page in pages for post in page]
    assert served == [str(p.pk) for p in reversed(friend_posts)]


def test_feed_refusals(auth_client):
    assert auth_client.get("/api/v1/feed?tab=everything").status_code == 400
    assert auth_client.get("/api/v1/feed?cursor=forged").status_code == 400
    assert auth_client.get("/api/v1/feed?limit=0").status_code == 400
    assert auth_client.get("/api/v1/feed?tab=following&cursor=forged").status_code == 400
    assert auth_client.get("/api/v1/feed").json() == {"results": [], "next_cursor": None}


def test_continuation_and_the_shared_pool_exclude_the_same_authors(crowd, make_post):
    viewer, authors, posts = crowd
    make_post(viewer)
    follow_user(follower=viewer, followee=authors[0])
    block_user(blocker=authors[1], blocked=viewer)
    block_user(blocker=viewer, blocked=authors[3])
    report_post(reporter=viewer, post=next(p for p in posts if p.author_id == authors[2].pk), reason="x")
    snapshot, pool = recent_pool()

    def facts(served=()):
        return feed_viewer(
            viewer=viewer,
            recent_likes=10,
            followed_pool_at=snapshot,
            followed_pool_size=100,
            followed_pool_per_author=20,
            exclude_post_ids=served,
        )

    viewer_facts = facts()
    assert viewer_facts.excluded_author_ids == {authors[1].pk, authors[2].pk, authors[3].pk}
    from_query, _ = _continuation(viewer, snapshot, np.zeros(0, dtype=np.int64), viewer_facts)
    first_facts, followed = _first_page_viewer(viewer, snapshot)
    from_pool, _ = _candidates_from_pool(viewer, pool, first_facts, followed)
    expected = {p.pk for p in posts if p.author_id == authors[0].pk}
    assert set(from_query.post_ids.tolist()) == set(from_pool.post_ids.tolist()) == expected
    assert set(viewer_facts.followed_pool[0]) == expected
    # Served posts are left out of both of the continuation's pools.
    served = set(list(expected)[:2])
    later_facts = facts(served)
    assert set(later_facts.followed_pool[0]) == expected - served
    continued, _ = _continuation(viewer, snapshot, np.array(sorted(served), dtype=np.int64), later_facts)
    assert set(continued.post_ids.tolist()) == expected - served


def test_feeds_render_a_post_exactly_as_its_own_endpoint_does(make_user, make_post):
    """Feeds read posts with hand-written SQL; every field must match the ORM path of /posts/{id}."""
    import uuid

    viewer, author = make_user("reader"), make_user("writer")
    follow_user(follower=viewer, followee=author)
    source = make_post(author)
    post = make_post(
        author,
        caption="ünïcode caption",
        cameo_refs=[{"id": 7, "owner_username": "someone"}],
        ip_refs=[{"id": 3, "name": "Lighthouse Cat", "rights_holder": {"id": "2", "name": "Studio"}}],
        content_id=uuid.uuid4(),
        provider="reelforge",
        remix_of=source,
        remix_allowed=False,
    )
    like_post(user=viewer, post=post)
    client = client_for(viewer)
    detail = client.get(f"/api/v1/posts/{post.pk}").json()
    for tab in ("following", "for_you"):
        items = client.get(f"/api/v1/feed?tab={tab}").json()["results"]
        assert next(item for item in items if item["id"] == str(post.pk)) == detail, tab
    assert detail["liked_by_me"] is True and detail["remix_of"] == str(source.pk)
    assert detail["cameos"] == [{"id": "7", "owner_username": "someone"}]
    assert detail["published_at"].endswith("Z") and detail["video_url"].startswith("http://")


@pytest.mark.parametrize(
    "media, created_at, cameo_refs, ip_refs",
    [
        # Stored names that filepath_to_uri must quote: a space, non-ASCII, a backslash, a percent.
        ("posts/1/a b é\\c%d.mp4", (2026, 1, 2, 3, 4, 5, 100000), [], []),
        ("", (2026, 1, 2, 3, 4, 5, 0), [{"id": "7", "owner_username": "a"}, "not an object"], []),
        ("posts/1/plain-name_1.mp4", (1999, 12, 31, 23, 59, 59, 1), [], [{"id": 3}, {"name": "x"}]),
    ],
)
def test_feeds_rendered_by_the_database_match_the_python_rendering(
    make_user, make_post, media, created_at, cameo_refs, ip_refs
):
    """Feed pages are rendered by PostgreSQL (`_CARD_JSON`) where the storage allows; every field
    must match `render_post_card`, which /posts/{id} uses, including quoting and time formats."""
    from datetime import UTC, datetime

    viewer, author = make_user("reader"), make_user("writer")
    follow_user(follower=viewer, followee=author)
    post = make_post(author, caption='quote " and \\ and ünïcode', cameo_refs=cameo_refs, ip_refs=ip_refs)
    Post.objects.filter(pk=post.pk).update(
        video=media, poster=media, created_at=datetime(*created_at, tzinfo=UTC)
    )
    client = client_for(viewer)
    detail = client.get(f"/api/v1/posts/{post.pk}").json()
    for tab in ("following", "for_you"):
        response = client.get(f"/api/v1/feed?tab={tab}")
        assert response["Content-Type"] == "application/json"
        item = next(item for item in response.json()["results"] if item["id"] == str(post.pk))
        assert item == detail, tab
    from django.utils.encoding import filepath_to_uri

    assert detail["video_url"] == (f"http://testserver/media/{filepath_to_uri(media)}" if media else None)


def test_feeds_render_in_python_when_media_urls_are_signed(make_user, make_post, monkeypatch):
    """Storage whose URLs are not a fixed prefix and the name (signed S3 URLs) cannot be rendered in
    the database; the same pages come from the Python rendering instead."""
    from django.core.files.storage import Storage
    from django.utils.encoding import filepath_to_uri

    from social.api.serializers import PostRendering

    class SignedUrlStorage(Storage):
        def url(self, name):
            return f"https://cdn.example/{filepath_to_uri(name)}?signature=abc"

    viewer, author = make_user("reader"), make_user("writer")
    follow_user(follower=viewer, followee=author)
    posts = [make_post(author, caption=f"p{index}") for index in range(3)]
    client = client_for(viewer)
    from_database = {tab: _chain(client, tab, limit=2) for tab in ("following", "for_you")}
    assert PostRendering(None).database_media_prefix() == "/media/"
    monkeypatch.setattr(Post._meta.get_field("video"), "storage", SignedUrlStorage())
    assert PostRendering(None).database_media_prefix() is None
    from_python = {tab: _chain(client, tab, limit=2) for tab in ("following", "for_you")}
    for tab in ("following", "for_you"):
        python_items = [item for page in from_python[tab] for item in page]
        database_items = [item for page in from_database[tab] for item in page]
        assert [len(page) for page in from_python[tab]] == [len(page) for page in from_database[tab]]
        assert {item["id"] for item in python_items} == {str(post.pk) for post in posts}
        for python_item, database_item in zip(python_items, database_items, strict=True):
            for field in ("video_url", "poster_url"):
                name = database_item[field].removeprefix("http://testserver/media/")
                assert python_item[field] == f"https://cdn.example/{name}?signature=abc"
                python_item[field] = database_item[field]
            assert python_item == database_item


def test_feeds_render_in_python_when_database_rendering_is_off(make_user, make_post, settings):
    from social.api.serializers import PostRendering

    viewer, author = make_user("reader"), make_user("writer")
    follow_user(follower=viewer, followee=author)
    make_post(author, caption="one")
    client = client_for(viewer)
    rendered = {tab: client.get(f"/api/v1/feed?tab={tab}").json() for tab in ("following", "for_you")}
    settings.FEED_RENDER_IN_DATABASE = False
    assert PostRendering(None).database_media_prefix() is None
    for tab in ("following", "for_you"):
        # No cursor: both pages are first pages, so for_you ranks the same single post.
        assert client.get(f"/api/v1/feed?tab={tab}").json()["results"] == rendered[tab]["results"]


def test_a_cursor_of_one_tab_is_refused_by_the_other(crowd):
    viewer, authors, _posts = crowd
    for author in authors:
        follow_user(follower=viewer, followee=author)
    client = client_for(viewer)
    cursors = {
        tab: client.get(f"/api/v1/feed?tab={tab}&limit=2").json()["next_cursor"]
        for tab in ("following", "for_you")
    }
    assert all(cursors.values())
    for tab, other in (("following", "for_you"), ("for_you", "following")):
        response = client.get(f"/api/v1/feed?tab={other}&cursor={cursors[tab]}")
        assert response.status_code == 400, (tab, other)
        assert response.json()["error"]["code"] == "invalid"


def _followed_pool_from_the_statement(viewer, snapshot):
    facts = feed_viewer(
        viewer=viewer,
        recent_likes=10,
        followed_pool_at=snapshot,
        followed_pool_size=feed.FOLLOWED_POOL,
        followed_pool_per_author=feed.FOLLOWED_POOL_PER_AUTHOR,
    )
    return Candidates.from_columns(facts.followed_pool, snapshot=snapshot)


def _assert_same_candidates(kept, expected):
    assert kept.post_ids.tolist() == expected.post_ids.tolist()
    assert kept.author_ids.tolist() == expected.author_ids.tolist()
    assert kept.root_ids.tolist() == expected.root_ids.tolist()
    np.testing.assert_allclose(kept.base_scores, expected.base_scores, rtol=1e-12)


def test_followed_pool_kept_by_the_process_matches_the_statement(crowd, make_user, make_post, monkeypatch):
    viewer, authors, posts = crowd
    monkeypatch.setattr(feed, "FOLLOWED_POOL", 7)
    monkeypatch.setattr(feed, "FOLLOWED_POOL_PER_AUTHOR", 3)
    silent = make_user("silent")
    for followee in [*authors, silent]:
        follow_user(follower=viewer, followee=followee)
    block_user(blocker=viewer, blocked=authors[3])
    snapshot = timezone.now()
    # Published after the snapshot: among the rows kept, never in this chain.
    later = make_post(authors[1], caption="later")
    expected = _followed_pool_from_the_statement(viewer, snapshot)
    assert len(expected) == 7
    # Read from the database, then from what the process kept (the viewer's hint names them all).
    for _ in range(2):
        _facts, followed = _first_page_viewer(viewer, snapshot)
        _assert_same_candidates(followed, expected)
        assert later.pk not in followed.post_ids and authors[3].pk not in followed.author_ids
    assert set(feed.authors_newest.kept_for(viewer.pk)) == {
        authors[0].pk,
        authors[1].pk,
        authors[2].pk,
        silent.pk,
    }
    # At most FOLLOWED_POOL_PER_AUTHOR of the prolific author.
    assert followed.author_ids.tolist().count(authors[0].pk) == 3


def test_a_first_page_asks_only_for_the_authors_not_kept(
    crowd, make_post, django_assert_num_queries, monkeypatch
):
    viewer, authors, posts = crowd
    for followee in authors[:2]:
        follow_user(follower=viewer, followee=followee)
    asked = []
    real = feed.first_page_viewer

    def first_page_viewer(**kwargs):
        asked.append(sorted(kwargs["kept_author_ids"]))
        return real(**kwargs)

    monkeypatch.setattr(feed, "first_page_viewer", first_page_viewer)
    with django_assert_num_queries(1):
        _first_page_viewer(viewer, timezone.now())
    # A new follow is read although the hint lacks it; an old follow is not served.
    follow_user(follower=viewer, followee=authors[2])
    unfollow_user(follower=viewer, followee=authors[0])
    with django_assert_num_queries(1):
        _facts, followed = _first_page_viewer(viewer, timezone.now())
    assert set(followed.author_ids.tolist()) == {authors[1].pk, authors[2].pk}
    # A post saved in this process drops its author's rows at once: read again, with the post.
    new = make_post(authors[1], caption="new")
    _facts, followed = _first_page_viewer(viewer, timezone.now())
    assert new.pk in followed.post_ids
    assert asked == [[], sorted([authors[0].pk, authors[1].pk]), [authors[2].pk]]


def test_authors_newest_expires_and_stays_bounded(monkeypatch):
    kept = AuthorsNewest(capacity=2, viewers=2)
    rows = {
        author_id: np.full((1, len(feed.CANDIDATE_FIELDS)), float(author_id)) for author_id in (1, 2, 3, 4)
    }
    kept.put(10, [1, 2], {1: rows[1], 2: rows[2]})
    assert set(kept.kept_for(10)) == {1, 2}
    kept.put(11, [3], {3: rows[3]})  # full: the two kept ones went
    assert set(kept.kept_for(10)) == set() and set(kept.kept_for(11)) == {3}
    kept.put(12, [4], {})
    assert kept.kept_for(10) == {}, "the least recently used hint went"
    monkeypatch.setattr(feed, "RECENT_POOL_SECONDS", 0)
    kept.put(11, [3, 4], {4: rows[4]})  # 4 kept for no time: never served
    assert set(kept.kept_for(11)) == {3}
    kept.forget()
    assert kept.kept_for(11) == {} and not kept._rows


def test_a_later_page_on_another_process_reads_the_ranking_from_the_shared_cache(
    crowd, django_assert_num_queries
):
    viewer, _authors, _posts = crowd
    client = client_for(viewer)
    first = client.get("/api/v1/feed?tab=for_you&limit=3").json()
    expected = client.get(f"/api/v1/feed?tab=for_you&limit=3&cursor={first['next_cursor']}").json()
    recent_rankings.clear()  # as if the next page reached another server process
    # The token's user and the page: no statement to rank the chain again.
    with django_assert_num_queries(2):
        again = client.get(f"/api/v1/feed?tab=for_you&limit=3&cursor={first['next_cursor']}").json()
    assert [post["id"] for post in again["results"]] == [post["id"] for post in expected["results"]]
