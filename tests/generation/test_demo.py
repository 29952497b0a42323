import pytest

from generation.demo import seed_generation_demo
from generation.models import Generation, Provenance
from social.demo import seed_social_demo
from social.models import Post

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_posts_are_made_through_the_job_path_and_seeding_again_changes_nothing():
    users = seed_social_demo()
    before = Post.objects.count()
    posts = seed_generation_demo(users)
    assert len(posts) == 7 and all(post.status == "published" for post in posts)
    assert Generation.objects.filter(status="succeeded").count() == 7
    assert Provenance.objects.count() == 7
    assert all(Post.objects.get(pk=post.pk).has_audio for post in posts)
    chain_end = Post.objects.get(pk=posts[4].pk)
    assert chain_end.depth == 2 and chain_end.remix_of.remix_of_id == posts[0].pk
    assert Generation.objects.get(post=chain_end).mode == "continue"
    # The relay stitched into one video, in the chain's order.
    relay = Post.objects.get(pk=posts[5].pk)
    assert relay.source_ids == [posts[0].pk, posts[3].pk, posts[4].pk]
    assert Generation.objects.get(post=relay).mode == "stitch"
    # A three-shot storyboard, joined into one post.
    board = Generation.objects.get(post_id=posts[6].pk)
    assert board.mode == "storyboard" and board.shots.filter(status="succeeded").count() == 3
    assert posts[6].duration_s == 6

    again = seed_generation_demo(users)
    assert [post.pk for post in again] == [post.pk for post in posts]
    assert Post.objects.count() == before + 7 and Generation.objects.count() == 7
