"""Video model backends behind one interface (`load(config)`, `generate(request, on_step)`).

`Renderer` holds one adapter per route and sends each request to one (`route`, the model routing
of DESIGN.md): a job with exactly one cameo, a person, goes to the identity-preserving model; a
job with a character or with several cameos to the reference-to-video model (one reference image
per cameo); the rest to text-to-video. `get_renderer()` builds it once per process from settings:
the worker loads the models when its process starts and keeps them for its whole life.

Model directory layout (`GENERATION_MODEL_DIR`; the `tiny` backend builds the same layout):

    consisid/            a diffusers ConsisIDPipeline (model_index.json, transformer/, vae/,
                         text_encoder/, tokenizer/, scheduler/) and face_vision/ (a transformers
                         CLIPVisionModelWithProjection)
    text_to_video/       a diffusers CogVideoXPipeline
    image_to_video/      optional: a diffusers CogVideoXImageToVideoPipeline (remix `continue`
                         mode without cameos)
    reference_to_video/  a diffusers WanVACEPipeline (model_index.json, transformer/, vae/,
                         text_encoder/, tokenizer/, scheduler/), e.g. Wan2.1-VACE-1.3B-diffusers
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from generation.backends.adapters import CogVideoXAdapter, ConsisIDAdapter, ReferenceToVideoAdapter
from generation.backends.base import (
    BackendConfig,
    BackendError,
    CheckpointMissing,
    IdentityInput,
    OutOfMemory,
    ReferenceImage,
    RenderCancelled,
    RenderRequest,
    StepCallback,
    VideoBackend,
)

# How a route conditions the video on each cameo of the request (the provenance record's words).
IDENTITY, REFERENCE, TEXT = "identity", "reference", "text"
CONDITIONING = {IDENTITY: "identity", REFERENCE: "reference", TEXT: "prompt_only"}

__all__ = [
    "BackendConfig",
    "BackendError",
    "CheckpointMissing",
    "IdentityInput",
    "OutOfMemory",
    "ReferenceImage",
    "RenderCancelled",
    "RenderRequest",
    "Renderer",
    "VideoBackend",
    "cameo_conditioning",
    "get_renderer",
    "renderer_from_settings",
    "route",
]


def route(request: RenderRequest) -> str:
    """Which model renders `request`: IDENTITY for one person and nothing else (a request with an
    identity and no references, or with that person as its only reference), REFERENCE for any
    other request with cameos, TEXT without cameos."""
    references = request.references
    lone_person = len(references) == 1 and references[0].kind == "person"
    if request.identity is not None and (not references or lone_person):
        return IDENTITY
    return REFERENCE if references else TEXT


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
    name: str

    @classmethod
    def load(cls, config: BackendConfig, *, name: str) -> Renderer:
        def loaded(adapter: VideoBackend, folder: str) -> VideoBackend:
            adapter.load(replace(config, model_dir=Path(config.model_dir) / folder))
            return adapter

        return cls(
            identity_backend=loaded(ConsisIDAdapter(), "consisid"),
            text_backend=loaded(CogVideoXAdapter(), "text_to_video"),
            reference_backend=loaded(ReferenceToVideoAdapter(), "reference_to_video"),
            name=name,
        )

    def backend_for(self, request: RenderRequest) -> VideoBackend:
        return {
            IDENTITY: self.identity_backend,
            REFERENCE: self.reference_backend,
            TEXT: self.text_backend,
        }[route(request)]

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        return self.backend_for(request).generate(request, on_step)

    def model_id_for(self, request: RenderRequest) -> str:
        return f"{self.name}:{self.backend_for(request).model_id}"


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
                "text_to_video/ and reference_to_video/ diffusers pipeline directories (see "
                "generation/backends/__init__.py)."
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
