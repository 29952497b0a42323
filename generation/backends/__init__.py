"""Video model backends behind one interface (`load(config)`, `generate(request, on_step)`).

`Renderer` holds one identity-preserving adapter (cameo videos) and one text-to-video adapter (the
rest) and routes each request. `get_renderer()` builds it once per process from settings: the
worker loads the models when its process starts and keeps them for its whole life.

Model directory layout (`GENERATION_MODEL_DIR`; the `tiny` backend builds the same layout):

    consisid/          a diffusers ConsisIDPipeline (model_index.json, transformer/, vae/,
                       text_encoder/, tokenizer/, scheduler/) and face_vision/ (a transformers
                       CLIPVisionModelWithProjection)
    text_to_video/     a diffusers CogVideoXPipeline
    image_to_video/    optional: a diffusers CogVideoXImageToVideoPipeline (remix `continue` mode
                       without cameos)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from generation.backends.adapters import CogVideoXAdapter, ConsisIDAdapter
from generation.backends.base import (
    BackendConfig,
    BackendError,
    CheckpointMissing,
    IdentityInput,
    OutOfMemory,
    RenderCancelled,
    RenderRequest,
    StepCallback,
    VideoBackend,
)

__all__ = [
    "BackendConfig",
    "BackendError",
    "CheckpointMissing",
    "IdentityInput",
    "OutOfMemory",
    "RenderCancelled",
    "RenderRequest",
    "Renderer",
    "VideoBackend",
    "get_renderer",
    "renderer_from_settings",
]


@dataclass
class Renderer:
    identity_backend: VideoBackend
    text_backend: VideoBackend
    name: str

    @classmethod
    def load(cls, config: BackendConfig, *, name: str) -> Renderer:
        identity_backend = ConsisIDAdapter()
        identity_backend.load(replace(config, model_dir=Path(config.model_dir) / "consisid"))
        text_backend = CogVideoXAdapter()
        text_backend.load(replace(config, model_dir=Path(config.model_dir) / "text_to_video"))
        return cls(identity_backend=identity_backend, text_backend=text_backend, name=name)

    def backend_for(self, request: RenderRequest) -> VideoBackend:
        return self.identity_backend if request.identity is not None else self.text_backend

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
                f"GENERATION_MODEL_DIR {model_dir} does not exist: it must hold consisid/ and "
                "text_to_video/ diffusers pipeline directories (see generation/backends/__init__.py)."
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
