"""The one small interface every video model adapter implements, and what crosses it.

Adapters know nothing of Django: a request carries plain values (prompt, seed, size, identity
arrays, one reference image per cameo, an optional first frame), `generate` returns frames as a
uint8 array (frames, height, width, 3). `on_step(step, total)` is called after every denoising step; raising from it (for
instance `RenderCancelled`) stops the render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from generation.soundtrack import Soundtrack

StepCallback = Callable[[int, int], None]


class BackendError(Exception):
    """A failure with a stable code that the job records as its error."""

    code = "generation_failed"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code or self.code


class CheckpointMissing(BackendError):
    code = "model_unavailable"


class OutOfMemory(BackendError):
    code = "out_of_memory"


class RenderCancelled(BackendError):
    code = "cancelled"


@dataclass(frozen=True)
class BackendConfig:
    model_dir: Path
    device: str = "cpu"
    dtype: str = "float32"
    vae_tiling: bool = False
    vae_slicing: bool = False
    cpu_offload: bool = False
    max_sequence_length: int = 226
    prompt_cache_size: int = 256
    identity_cache_size: int = 64


@dataclass(frozen=True)
class IdentityInput:
    """A cameo as the identity-preserving model needs it: its template and aligned face crop.

    `cache_key` is (cameo id, template version): a re-enrolled cameo gets a new version, so its
    cached conditioning is never reused.
    """

    cameo_id: str
    template_version: int
    embedding: np.ndarray
    encoder: str
    face_crop: Image.Image

    @property
    def cache_key(self) -> tuple[str, int]:
        return (self.cameo_id, self.template_version)


@dataclass(frozen=True)
class ReferenceImage:
    """A cameo as a reference-to-video model needs it: one picture of its subject (a person's
    aligned face crop, a character's best reference image)."""

    cameo_id: str
    kind: str  # "person" or "character"
    image: Image.Image


@dataclass
class RenderRequest:
    prompt: str
    seed: int
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float = 6.0
    negative_prompt: str = ""
    identity: IdentityInput | None = None
    # One per cameo of the job, in the job's order; `generation.backends.route` decides which
    # model (and so which of `identity` and `references`) conditions the video.
    references: tuple[ReferenceImage, ...] = ()
    # The first frame to continue from (remix `continue` mode).
    init_image: Image.Image | None = None
    # Whether the video gets a sound track, and the length of the clip the rendered frames make
    # (they are held to fill it), which the sound must match.
    audio: bool = False
    duration_s: float = 0.0


@dataclass(frozen=True)
class Rendered:
    """What a render produces: the frames (frames, height, width, 3) uint8 and, when the request
    asked for it, the sound track of the whole clip."""

    frames: np.ndarray
    sound: Soundtrack | None = None


class VideoBackend(Protocol):
    family: str

    def load(self, config: BackendConfig) -> None: ...

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray: ...

    @property
    def model_id(self) -> str: ...


class SoundingVideoBackend(Protocol):
    """A model that renders picture and sound in one pass (LTX-2)."""

    family: str

    def load(self, config: BackendConfig) -> None: ...

    def generate_with_sound(
        self, request: RenderRequest, on_step: StepCallback | None = None
    ) -> Rendered: ...

    @property
    def model_id(self) -> str: ...


class AudioBackend(Protocol):
    """A text-to-audio model: the sound track of a video whose picture another model renders."""

    family: str

    def load(self, config: BackendConfig) -> None: ...

    def generate_audio(
        self,
        *,
        prompt: str,
        seed: int,
        duration_s: float,
        num_inference_steps: int,
        on_step: StepCallback | None = None,
    ) -> Soundtrack: ...

    @property
    def model_id(self) -> str: ...
