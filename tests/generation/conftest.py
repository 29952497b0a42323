import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from cameo.models import Permission
from generation.backends import IdentityInput, Renderer, RenderRequest, config_from_settings
from tests.cameo.conftest import enrolled_cameo  # noqa: F401 - the cameo app's enrollment fixture


@pytest.fixture(scope="session")
def tiny_renderer() -> Renderer:
    """The tiny model set, built once into the cache directory and loaded with from_pretrained."""
    config, name = config_from_settings()
    return Renderer.load(config, name=name)


@pytest.fixture
def made_through_the_job(tiny_renderer):
    """make(author, status=..., **request): a post by `author` made through the real job path
    (request_generation, then the worker with the tiny renderer), published unless `status` is draft."""
    from generation import services, worker
    from generation.models import GenerationStatus
    from social import services as social_services
    from social.models import Post, PostStatus

    def make(author, *, status=PostStatus.PUBLISHED, **request) -> Post:
        job, _ = services.request_generation(user=author, request=services.GenerationRequest(**request))
        done = worker.execute_generation(job.pk, renderer=tiny_renderer)
        assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
        post = Post.objects.get(pk=done.post_id)
        if status == PostStatus.PUBLISHED:
            post = social_services.publish_post(actor=author, post=post)
        return post

    return make


@pytest.fixture
def alice_cameo(user, enrolled_cameo):  # noqa: F811
    """alice's cameo, usable by everyone, with instructions of her own."""
    cameo = enrolled_cameo(user, permission=Permission.EVERYONE, instructions="always in a red scarf")
    assert cameo.status == "active", cameo.rejection_reason
    return cameo


def face_image(seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 200, size=(size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def identity(cameo_id: str, seed: int, *, version: int = 1, dims: int = 128) -> IdentityInput:
    rng = np.random.default_rng(seed)
    return IdentityInput(
        cameo_id=cameo_id,
        template_version=version,
        embedding=rng.standard_normal(dims).astype(np.float32),
        encoder="dlib",
        face_crop=face_image(seed),
    )


def render_request(**overrides) -> RenderRequest:
    values = {
        "prompt": "a red fox running through snow",
        "seed": 7,
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "num_inference_steps": settings.GENERATION_STEPS,
    }
    values.update(overrides)
    return RenderRequest(**values)
