"""Video model backends behind one interface (`load(config)`, `generate(request, on_step)`).

`Renderer` holds one adapter per route and sends each request to one (`route`, the model routing
of DESIGN.md): a job with exactly one cameo, a person, goes to the identity-preserving model; a
job with a character or with several cameos to the reference-to-video model (one reference image
per cameo); a job with sound and no cameos to the model that renders picture and sound together;
the rest to text-to-video. A cameo job with sound gets its sound track from the text-to-audio model
(`Renderer.render`). `get_renderer()` builds it once per process from settings: the worker loads
the models when its process starts and keeps them for its whole life.

Model directory layout (`GENERATION_MODEL_DIR`; the `tiny` backend builds the same layout):

    consisid/            a diffusers ConsisIDPipeline (model_index.json, transformer/, vae/,
                         text_encoder/, tokenizer/, scheduler/) and face_vision/ (a transformers
                         CLIPVisionModelWithProjection)
    text_to_video/       a diffusers CogVideoXPipeline
    image_to_video/      optional: a diffusers CogVideoXImageToVideoPipeline (remix `continue`
                         mode without cameos)
    reference_to_video/  a diffusers WanVACEPipeline (model_index.json, transformer/, vae/,
                         text_encoder/, tokenizer/, scheduler/), e.g. Wan2.1-VACE-1.3B-diffusers
    audio_video/         a diffusers LTX2Pipeline (those parts and connectors/, audio_vae/,
                         vocoder/), e.g. Lightricks/LTX-2 in diffusers format; it also continues
                         from a frame with sound (LTX2ImageToVideoPipeline over the same weights)
    text_to_audio/       a diffusers StableAudioPipeline (those parts and projection_model/), e.g.
                         stabilityai/stable-audio-open-1.0 in diffusers format
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from generation.backends.adapters import (
    CogVideoXAdapter,
    ConsisIDAdapter,
    LTX2Adapter,
    ReferenceToVideoAdapter,
    TextToAudioAdapter,
)
from generation.backends.base import (
    AudioBackend,
    BackendConfig,
    BackendError,
    CheckpointMissing,
    IdentityInput,
    OutOfMemory,
    ReferenceImage,
    RenderCancelled,
    Rendered,
    RenderRequest,
    SoundingVideoBackend,
    Soundtrack,
    StepCallback,
    VideoBackend,
)

# How a route conditions the video on each cameo of the request (the provenance record's words).
IDENTITY, REFERENCE, TEXT, SOUND = "identity", "reference", "text", "sound"
CONDITIONING = {IDENTITY: "identity", REFERENCE: "reference", TEXT: "prompt_only", SOUND: "prompt_only"}

__all__ = [
    "AudioBackend",
    "BackendConfig",
    "BackendError",
    "CheckpointMissing",
    "IdentityInput",
    "OutOfMemory",
    "ReferenceImage",
    "RenderCancelled",
    "RenderRequest",
    "Rendered",
    "Renderer",
    "SoundingVideoBackend",
    "Soundtrack",
    "VideoBackend",
    "cameo_conditioning",
    "get_renderer",
    "renderer_from_settings",
    "route",
]


def route(request: RenderRequest) -> str:
    """Which model renders `request`'s picture: IDENTITY for one person and nothing else (a
    request with an identity and no references, or with that person as its only reference),
    REFERENCE for any other request with cameos; without cameos SOUND (picture and sound in one
    pass) when it asks for sound, TEXT otherwise."""
    references = request.references
    lone_person = len(references) == 1 and references[0].kind == "person"
    if request.identity is not None and (not references or lone_person):
        return IDENTITY
    if references:
        return REFERENCE
    return SOUND if request.audio else TEXT


def cameo_conditioning(request: RenderRequest) -> dict[str, str]:
    """{cameo id: how it conditions the video} for the cameos of `request` ("identity",
    "reference"); a cameo of the job missing here appears through the prompt only."""
    chosen = route(request)
    if chosen == IDENTITY:
        return {request.identity.cameo_id: CONDITIONING[IDENTITY]}
    return {reference.cameo_id: CONDITIONING[chosen] for reference in request.references}


@dataclass
class Renderer:
    identity_backend: VideoBackend
    text_backend: VideoBackend
    reference_backend: VideoBackend
    sound_backend: SoundingVideoBackend
    audio_backend: AudioBackend
    name: str

    @classmethod
    def load(cls, config: BackendConfig, *, name: str) -> Renderer:
        def loaded(adapter, folder: str):
            adapter.load(replace(config, model_dir=Path(config.model_dir) / folder))
            return adapter

        return cls(
            identity_backend=loaded(ConsisIDAdapter(), "consisid"),
            text_backend=loaded(CogVideoXAdapter(), "text_to_video"),
            reference_backend=loaded(ReferenceToVideoAdapter(), "reference_to_video"),
            sound_backend=loaded(LTX2Adapter(), "audio_video"),
            audio_backend=loaded(TextToAudioAdapter(), "text_to_audio"),
            name=name,
        )

    def backend_for(self, request: RenderRequest) -> VideoBackend | SoundingVideoBackend:
        """The model that renders the picture of `request`."""
        return {
            IDENTITY: self.identity_backend,
            REFERENCE: self.reference_backend,
            TEXT: self.text_backend,
            SOUND: self.sound_backend,
        }[route(request)]

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        """The picture alone (see `render` for the sound too)."""
        return self.backend_for(request).generate(request, on_step)

    def render(self, request: RenderRequest, on_step: StepCallback | None = None) -> Rendered:
        """The picture and, when the request asks for it, the sound: in one pass on the SOUND
        route, else from the text-to-audio model after the picture. `on_step` counts the steps of
        both passes as one render."""
        if route(request) == SOUND:
            return self.sound_backend.generate_with_sound(request, on_step)
        if not request.audio:
            return Rendered(frames=self.generate(request, on_step))
        if request.duration_s <= 0:
            # Checked before the picture pass, which is the long one.
            raise BackendError("A sound track needs the length of its clip.", code="invalid_request")
        steps = request.num_inference_steps
        total = 2 * steps
        frames = self.generate(request, counted_after(on_step, done=0, total=total))
        sound = self.audio_backend.generate_audio(
            prompt=request.prompt,
            seed=request.seed,
            duration_s=request.duration_s,
            num_inference_steps=steps,
            on_step=counted_after(on_step, done=steps, total=total),
        )
        return Rendered(frames=frames, sound=sound)

    def model_id_for(self, request: RenderRequest) -> str:
        """The models that render `request`, the picture's first ("tiny:consisid@..+stable_audio@..")."""
        models = [self.backend_for(request).model_id]
        if request.audio and route(request) != SOUND:
            models.append(self.audio_backend.model_id)
        return f"{self.name}:{'+'.join(models)}"


def counted_after(on_step: StepCallback | None, *, done: int, total: int) -> StepCallback | None:
    """`on_step` for one pass of a render made of several: its steps reported after the `done`
    steps of the passes before it, out of the `total` of all of them."""
    if on_step is None:
        return None
    return lambda step, _pass_total: on_step(done + step, total)


def config_from_settings() -> tuple[BackendConfig, str]:
    from django.conf import settings

    name = settings.GENERATION_BACKEND
    if name == "tiny":
        from generation.backends.tiny import ensure_tiny_models

        model_dir = ensure_tiny_models(Path(settings.GENERATION_TINY_CACHE_DIR))
    elif name == "diffusers":
        model_dir = Path(settings.GENERATION_MODEL_DIR)
        if not model_dir.is_dir():
            raise CheckpointMissing(
                f"GENERATION_MODEL_DIR {model_dir} does not exist: it must hold consisid/, "
                "text_to_video/, reference_to_video/, audio_video/ and text_to_audio/ diffusers "
                "pipeline directories (see generation/backends/__init__.py)."
            )
    else:
        raise CheckpointMissing(f"Unknown GENERATION_BACKEND {name!r}: use 'tiny' or 'diffusers'.")
    config = BackendConfig(
        model_dir=model_dir,
        device=settings.GENERATION_DEVICE,
        dtype=settings.GENERATION_DTYPE,
        vae_tiling=settings.GENERATION_VAE_TILING,
        vae_slicing=settings.GENERATION_VAE_SLICING,
        cpu_offload=settings.GENERATION_CPU_OFFLOAD,
        max_sequence_length=settings.GENERATION_MAX_TEXT_TOKENS,
    )
    return config, name


def renderer_from_settings() -> Renderer:
    config, name = config_from_settings()
    return Renderer.load(config, name=name)


_renderer: Renderer | None = None
_renderer_lock = threading.Lock()


def get_renderer() -> Renderer:
    """The process's renderer, loaded on first use and kept: never once per job."""
    global _renderer
    if _renderer is None:
        with _renderer_lock:
            if _renderer is None:
                _renderer = renderer_from_settings()
    return _renderer
