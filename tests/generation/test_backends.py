import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backends import BackendConfig, CheckpointMissing, Renderer, config_from_settings
from generation.backends.adapters import ConsisIDAdapter
from generation.backends.identity import face_embedding_512
from tests.generation.conftest import face_image, identity, render_request


def test_same_seed_and_inputs_give_identical_frames(tiny_renderer):
    first = tiny_renderer.generate(render_request())
    second = tiny_renderer.generate(render_request())
    assert first.shape == (9, 64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)


def test_another_prompt_or_seed_gives_different_frames(tiny_renderer):
    base = tiny_renderer.generate(render_request())
    assert not np.array_equal(base, tiny_renderer.generate(render_request(prompt="a blue whale in the sky")))
    assert not np.array_equal(base, tiny_renderer.generate(render_request(seed=8)))


def test_identity_conditioning_reaches_the_model(tiny_renderer):
    alice, bob = identity("1", 1), identity("2", 2)
    with_alice = tiny_renderer.generate(render_request(identity=alice))
    assert np.array_equal(with_alice, tiny_renderer.generate(render_request(identity=alice)))
    # Another person (other embedding and face) and another embedding alone both change the video.
    assert not np.array_equal(with_alice, tiny_renderer.generate(render_request(identity=bob)))
    same_face_other_embedding = replace(bob, face_crop=alice.face_crop, cameo_id="3")
    assert not np.array_equal(
        with_alice, tiny_renderer.generate(render_request(identity=same_face_other_embedding))
    )


def test_cameo_jobs_use_consisid_and_others_text_to_video(tiny_renderer):
    assert tiny_renderer.backend_for(render_request(identity=identity("1", 1))).family == "consisid"
    assert tiny_renderer.backend_for(render_request()).family == "cogvideox"
    assert tiny_renderer.model_id_for(render_request()).startswith("tiny:cogvideox@")


def test_init_image_conditions_image_to_video_and_consisid(tiny_renderer):
    plain = tiny_renderer.generate(render_request())
    continued = tiny_renderer.generate(render_request(init_image=face_image(5)))
    assert continued.shape == plain.shape and not np.array_equal(plain, continued)
    alice = identity("1", 1)
    face_start = tiny_renderer.generate(render_request(identity=alice))
    frame_start = tiny_renderer.generate(render_request(identity=alice, init_image=face_image(5)))
    assert not np.array_equal(face_start, frame_start)


def test_portrait_and_landscape_sizes(tiny_renderer):
    assert tiny_renderer.generate(render_request(width=48, height=80)).shape == (9, 80, 48, 3)


def test_step_callback_reports_every_step(tiny_renderer):
    steps = []
    tiny_renderer.generate(
        render_request(num_inference_steps=3), lambda step, total: steps.append((step, total))
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_prompt_embeddings_are_cached_per_model_and_prompt(tiny_renderer):
    backend = tiny_renderer.text_backend
    backend.prompt_cache.clear()
    tiny_renderer.generate(render_request(prompt="cache me"))
    tiny_renderer.generate(render_request(prompt="cache me", seed=99))
    tiny_renderer.generate(render_request(prompt="another one"))
    assert (backend.prompt_cache.hits, backend.prompt_cache.misses) == (1, 2)


def test_identity_conditioning_cached_per_cameo_and_template_version(tiny_renderer):
    backend: ConsisIDAdapter = tiny_renderer.identity_backend
    backend.identity_cache.clear()
    tiny_renderer.generate(render_request(identity=identity("9", 9)))
    tiny_renderer.generate(render_request(identity=identity("9", 9), prompt="other prompt"))
    assert (backend.identity_cache.hits, backend.identity_cache.misses) == (1, 1)
    # A re-enrolled cameo (new template version) is conditioned afresh.
    tiny_renderer.generate(render_request(identity=identity("9", 10, version=2)))
    assert backend.identity_cache.misses == 2


def test_consisid_round_trips_through_save_and_from_pretrained(tiny_renderer, tmp_path):
    from diffusers import ConsisIDPipeline

    pipe = tiny_renderer.identity_backend.pipe
    pipe.save_pretrained(tmp_path / "copy")
    reloaded = ConsisIDPipeline.from_pretrained(str(tmp_path / "copy"), local_files_only=True)
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["transformer"] == ["diffusers", "ConsisIDTransformer3DModel"]
    assert index["tokenizer"][1] in {"T5Tokenizer", "T5TokenizerFast"}
    for name, tensor in pipe.transformer.state_dict().items():
        assert torch.equal(tensor, reloaded.transformer.state_dict()[name]), name
    assert reloaded.tokenizer("a fox").input_ids == pipe.tokenizer("a fox").input_ids


def test_missing_checkpoint_names_the_directory_and_its_contents(tmp_path):
    config = BackendConfig(model_dir=tmp_path / "models")
    (tmp_path / "models" / "consisid").mkdir(parents=True)
    with pytest.raises(CheckpointMissing) as caught:
        Renderer.load(config, name="diffusers")
    message = str(caught.value)
    assert str(tmp_path / "models" / "consisid") in message
    assert "model_index.json" in message and "transformer" in message
    assert caught.value.code == "model_unavailable"


def test_missing_model_directory_from_settings(settings, tmp_path):
    settings.GENERATION_BACKEND = "diffusers"
    settings.GENERATION_MODEL_DIR = str(tmp_path / "nowhere")
    with pytest.raises(CheckpointMissing, match="nowhere"):
        config_from_settings()


def test_dlib_embeddings_map_isometrically_into_the_512_slot():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(128), rng.standard_normal(128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    mapped_a, mapped_b = face_embedding_512(a), face_embedding_512(b)
    assert mapped_a.shape == (512,)
    assert np.isclose(float(mapped_a @ mapped_b), float(a @ b), atol=1e-5)
    assert np.array_equal(face_embedding_512(a), mapped_a)
    native = rng.standard_normal(512)
    assert np.allclose(face_embedding_512(native), native / np.linalg.norm(native), atol=1e-6)


def test_tiny_models_are_real_diffusers_directories(tiny_renderer):
    root = Path(tiny_renderer.identity_backend.config.model_dir)
    assert (root / "model_index.json").exists() and (root / "face_vision" / "config.json").exists()
    assert (root.parent / "text_to_video" / "model_index.json").exists()
