import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backends import (
    IDENTITY,
    SOUND,
    BackendConfig,
    BackendError,
    CheckpointMissing,
    RenderCancelled,
    Renderer,
    RenderRequest,
    Soundtrack,
    cameo_conditioning,
    config_from_settings,
    route,
)
from generation.backends.adapters import ConsisIDAdapter, LTX2Adapter
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


# Sound: LTX-2 renders picture and sound together for a request without cameos; a cameo request
# gets its picture as before and its sound from the text-to-audio model.


def sound_request(**overrides) -> RenderRequest:
    return render_request(**{"audio": True, "duration_s": 1.0, **overrides})


def assert_audible(sound: Soundtrack, *, duration_s: float) -> None:
    assert sound.samples.dtype == np.float32 and sound.channels in (1, 2)
    assert np.isfinite(sound.samples).all() and np.abs(sound.samples).max() <= 1.0
    assert float(sound.samples.std()) > 1e-3
    assert sound.duration_s == pytest.approx(duration_s, rel=0.1)


def test_a_request_with_sound_and_no_cameos_renders_both_through_ltx2(tiny_renderer):
    request = sound_request(duration_s=2.0)
    assert route(request) == SOUND and cameo_conditioning(request) == {}
    assert tiny_renderer.backend_for(request).family == "ltx2"
    rendered = tiny_renderer.render(request)
    assert rendered.frames.shape == (9, 64, 64, 3) and rendered.frames.dtype == np.uint8
    # The frames are held to fill the clip, 8 frame intervals in 2 s: the sound covers the
    # 9 frames at that rate.
    frame_rate = (9 - 1) / 2.0
    assert_audible(rendered.sound, duration_s=9 / frame_rate)
    assert rendered.sound.sample_rate == tiny_renderer.sound_backend.pipe.vocoder.config.output_sampling_rate


def test_sound_renders_any_size_and_frame_count(tiny_renderer):
    assert tiny_renderer.render(sound_request(width=48, height=80)).frames.shape == (9, 80, 48, 3)
    assert tiny_renderer.render(sound_request(width=80, height=48)).frames.shape == (9, 48, 80, 3)
    # Off the VAE's frame grid (one plus a multiple of its temporal compression).
    assert tiny_renderer.render(sound_request(num_frames=8)).frames.shape[0] == 8


def test_sound_renders_are_deterministic_and_follow_prompt_and_seed(tiny_renderer):
    first, second = tiny_renderer.render(sound_request()), tiny_renderer.render(sound_request())
    assert np.array_equal(first.frames, second.frames)
    assert np.array_equal(first.sound.samples, second.sound.samples)
    for other in (sound_request(prompt="a blue whale in the sky"), sound_request(seed=8)):
        rendered = tiny_renderer.render(other)
        assert not np.array_equal(first.frames, rendered.frames)
        assert not np.array_equal(first.sound.samples, rendered.sound.samples)


class RecordingPipe:
    """A pipeline that records what it is called with and does what the real one does."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.calls: list[dict] = []

    def __call__(self, **inputs):
        self.calls.append(inputs)
        return self.pipe(**inputs)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def test_continuing_with_sound_renders_image_to_video_over_the_same_weights(tiny_renderer, monkeypatch):
    backend = tiny_renderer.sound_backend
    assert type(backend.image_pipe).__name__ == "LTX2ImageToVideoPipeline"
    assert backend.image_pipe.transformer is backend.pipe.transformer
    assert backend.image_pipe.text_encoder is backend.pipe.text_encoder
    image_pipe = RecordingPipe(backend.image_pipe)
    monkeypatch.setattr(backend, "image_pipe", image_pipe)

    plain = tiny_renderer.render(sound_request())
    continued = tiny_renderer.render(sound_request(init_image=face_image(5)))
    assert len(image_pipe.calls) == 1 and image_pipe.calls[0]["image"].size == (64, 64)
    assert continued.frames.shape == plain.frames.shape and not np.array_equal(plain.frames, continued.frames)
    assert_audible(continued.sound, duration_s=9 / 8)


def test_a_cameo_request_with_sound_gets_its_track_from_the_audio_model(tiny_renderer):
    request = sound_request(identity=identity("1", 1), duration_s=3.0)
    assert route(request) == IDENTITY
    rendered = tiny_renderer.render(request)
    assert np.array_equal(rendered.frames, tiny_renderer.generate(request))
    assert_audible(rendered.sound, duration_s=3.0)
    assert rendered.sound.sample_rate == tiny_renderer.audio_backend.pipe.vae.config.sampling_rate
    other_prompt = tiny_renderer.render(
        sound_request(identity=identity("1", 1), duration_s=3.0, prompt="rain")
    )
    assert not np.array_equal(rendered.sound.samples, other_prompt.sound.samples)


def test_without_sound_a_render_is_the_picture_alone(tiny_renderer):
    for request in (render_request(), render_request(identity=identity("1", 1))):
        rendered = tiny_renderer.render(request)
        assert rendered.sound is None
        assert np.array_equal(rendered.frames, tiny_renderer.generate(request))


def test_a_sound_track_needs_the_clip_length(tiny_renderer):
    with pytest.raises(BackendError) as caught:
        tiny_renderer.render(sound_request(identity=identity("1", 1), duration_s=0.0))
    assert caught.value.code == "invalid_request"


def test_a_clip_longer_than_the_audio_model_makes_gets_its_longest_track(tiny_renderer):
    backend = tiny_renderer.audio_backend
    sound = backend.generate_audio(
        prompt="wind", seed=1, duration_s=backend.max_duration_s + 5, num_inference_steps=2
    )
    assert sound.duration_s == pytest.approx(backend.max_duration_s)


def test_progress_counts_both_passes_once_and_raising_stops_the_render(tiny_renderer):
    steps = []
    tiny_renderer.render(
        sound_request(num_inference_steps=3), lambda step, total: steps.append((step, total))
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]

    steps.clear()
    cameo = sound_request(identity=identity("1", 1), num_inference_steps=3)
    tiny_renderer.render(cameo, lambda step, total: steps.append((step, total)))
    assert steps == [(step, 6) for step in range(1, 7)]

    for request, stop_at in ((sound_request(), 1), (cameo, 4)):
        steps.clear()

        def cancel(step, total, stop_at=stop_at):
            steps.append(step)
            if step == stop_at:
                raise RenderCancelled("stop")

        with pytest.raises(RenderCancelled):
            tiny_renderer.render(request, cancel)
        assert steps == list(range(1, stop_at + 1))


def test_model_id_names_every_model_that_renders(tiny_renderer):
    assert re.fullmatch(r"tiny:ltx2@\w+", tiny_renderer.model_id_for(sound_request()))
    both = tiny_renderer.model_id_for(sound_request(identity=identity("1", 1)))
    assert re.fullmatch(r"tiny:consisid@\w+\+stable_audio@\w+", both)
    assert re.fullmatch(
        r"tiny:consisid@\w+", tiny_renderer.model_id_for(render_request(identity=identity("1", 1)))
    )


def test_ltx2_prompt_embeddings_are_cached_across_text_and_image_to_video(tiny_renderer):
    backend = tiny_renderer.sound_backend
    backend.prompt_cache.clear()
    tiny_renderer.render(sound_request(prompt="cache the sound"))
    tiny_renderer.render(sound_request(prompt="cache the sound", init_image=face_image(3)))
    assert (backend.prompt_cache.hits, backend.prompt_cache.misses) == (1, 1)


def test_sound_models_are_real_diffusers_directories(tiny_renderer, tmp_path):
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

    root = Path(tiny_renderer.identity_backend.config.model_dir).parent
    index = json.loads((root / "audio_video" / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"
    assert index["text_encoder"] == ["transformers", "Gemma3ForConditionalGeneration"]
    assert index["tokenizer"][1] in {"GemmaTokenizer", "GemmaTokenizerFast"}
    pipe = LTX2Pipeline.from_pretrained(str(root / "audio_video"), local_files_only=True)
    assert LTX2ImageToVideoPipeline.from_pipe(pipe).vocoder is pipe.vocoder
    # Any character tokenizes (to bytes when it has no token of its own).
    assert pipe.tokenizer.unk_token_id not in pipe.tokenizer("a fox 日本 🦊").input_ids
    audio_index = json.loads((root / "text_to_audio" / "model_index.json").read_text())
    assert audio_index["_class_name"] == "StableAudioPipeline"
    assert audio_index["scheduler"] == ["diffusers", "CosineDPMSolverMultistepScheduler"]


def test_a_sound_checkpoint_missing_a_part_names_it(tiny_renderer, tmp_path):
    root = Path(tiny_renderer.identity_backend.config.model_dir).parent
    partial = tmp_path / "audio_video"
    shutil.copytree(root / "audio_video", partial)
    shutil.rmtree(partial / "vocoder")
    adapter = LTX2Adapter()
    with pytest.raises(CheckpointMissing) as caught:
        adapter.load(BackendConfig(model_dir=partial))
    assert "vocoder" in str(caught.value) and "connectors" in str(caught.value)
