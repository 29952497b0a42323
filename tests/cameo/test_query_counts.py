"""Every cameo list endpoint costs a fixed number of queries, whatever the page size."""

import pytest

from cameo import services
from cameo.models import Cameo, CameoStatus, Permission
from social.services import create_post, follow_user, like_post, publish_post
from tests.conftest import client_for
from tests.media import make_test_video

pytestmark = pytest.mark.django_db

# The owner's further cameos beyond the enrolled one, by permission: the viewer (a mutual) may use
# the everyone and mutuals ones, not the only-me ones.
EXTRA_PERMISSIONS = [Permission.EVERYONE, Permission.MUTUALS, Permission.ONLY_ME] * 5


@pytest.fixture(scope="session")
def post_video(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("cameo-posts") / "clip.mp4")


@pytest.fixture
def cameo_world(make_user, enrolled_cameo, post_video):
    """An owner with one enrolled cameo and 15 more of the same likeness, a mutual who may use
    most of them, a dozen requests to use, posts that use it and a dozen audit entries."""
    owner, viewer = make_user("owner"), make_user("viewer")
    follow_user(follower=owner, followee=viewer)
    follow_user(follower=viewer, followee=owner)
    cameo = enrolled_cameo(owner, permission=Permission.APPROVED)
    services.grant_use(actor=owner, cameo=cameo, grantee=viewer)
    # Enrolling is a second of face analysis each; the lists only need rows, so the owner's other
    # cameos copy the enrolled likeness (the same owner may hold it more than once), not its face
    # crop: files live under each cameo's own prefix, which erasing that cameo deletes.
    likeness = (
        "template_vector",
        "template_dim",
        "template_spread",
        "template_version",
        "encoder",
        "encoder_version",
    )
    biometrics = {name: getattr(cameo, name) for name in likeness}
    Cameo.objects.bulk_create(
        [
            Cameo(
                owner=owner, display_name=f"look {i}", status=CameoStatus.ACTIVE, permission=p, **biometrics
            )
            for i, p in enumerate(EXTRA_PERMISSIONS)
        ]
        + [Cameo(owner=owner, display_name="erased", status=CameoStatus.DELETED)]
    )
    requesters = [make_user(f"fan{i}") for i in range(12)]
    for requester in requesters:
        services.request_use(requester=requester, cameo=cameo, message=f"for my film, {requester.username}")
    for requester in requesters[:6]:
        services.grant_use(actor=owner, cameo=cameo, grantee=requester)
    for index in range(4):
        cameo = services.update_cameo(
            actor=owner, cameo=cameo, instructions=f"wear the red scarf, take {index}"
        )
    authors = [viewer, *requesters[:3]]
    for index in range(12):
        author = authors[index % len(authors)]
        post = create_post(author=author, video=str(post_video), prompt=f"me on the beach, take {index}")
        services.record_appearances(post=post, uses=[(cameo, cameo.consent_version)])
        if index % 2:
            post = publish_post(actor=author, post=post)
            like_post(user=owner, post=post)
    return {"owner": owner, "viewer": viewer, "cameo": cameo}


# (path, caller, queries, rows available): one query for the JWT's user, then the endpoint's own.
LIST_ENDPOINTS = [
    # the page of the owner's cameos with their owner (the erased one is left out).
    ("/api/v1/cameos", "owner", 2, 16),
    # the page of cameos the viewer may use, with their owners: the grant, the mutual follow, the
    # owner's age and blocks are subqueries of that one statement.
    ("/api/v1/cameos/usable", "viewer", 2, 11),
    # the cameo with its owner, the page of requests with their requesters.
    ("/api/v1/cameos/{cameo}/requests", "owner", 3, 12),
    # the cameo with its owner, the page of posts with their authors and the viewer's likes.
    ("/api/v1/cameos/{cameo}/appearances", "owner", 3, 12),
    # the cameo with its owner, the page of entries (the actor's name is kept on the entry).
    ("/api/v1/cameos/{cameo}/audit", "owner", 3, 13),
]


@pytest.mark.parametrize(("path", "caller", "queries", "available"), LIST_ENDPOINTS)
@pytest.mark.parametrize("limit", [1, 10])
def test_list_query_count_does_not_grow_with_page_size(
    cameo_world, django_assert_num_queries, path, caller, queries, available, limit
):
    client = client_for(cameo_world[caller])
    url = path.format(cameo=cameo_world["cameo"].pk) + f"?limit={limit}"
    with django_assert_num_queries(queries):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(limit, available)
    cursor = response.json()["next_cursor"]
    assert cursor is not None
    with django_assert_num_queries(queries):
        following = client.get(url + f"&cursor={cursor}")
    assert following.status_code == 200
    assert len(following.json()["results"]) == min(limit, available - limit)
