import pytest

from social.demo import DEMO_POSTS, seed_social_demo
from social.models import Follow, Post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_demo_seeds_a_feed_once():
    users = seed_social_demo()
    seed_social_demo()
    assert Post.objects.filter(status="published").count() == len(DEMO_POSTS)
    assert Follow.objects.count() == 5
    post = Post.objects.first()
    assert (post.width, post.height) == (144, 256) and post.duration_s == pytest.approx(2, abs=0.1)
    feed = client_for(users["alice"]).get("/api/v1/feed?tab=following&limit=50").json()["results"]
    assert {p["author"]["username"] for p in feed} == {"bob", "carol"}
    assert all(p["video_url"] and p["poster_url"] for p in feed)
    users["alice"].refresh_from_db()
    assert (users["alice"].posts_count, users["alice"].followers_count) == (2, 2)
