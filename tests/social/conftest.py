import pytest

from social.services import create_post
from tests.media import make_test_video


@pytest.fixture(scope="session")
def test_video(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4")


@pytest.fixture
def make_post(test_video):
    def make(author, *, status="published", **fields):
        return create_post(author=author, video=test_video, status=status, **fields)

    return make
