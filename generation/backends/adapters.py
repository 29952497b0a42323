"""Adapters over diffusers pipelines: one per model family, thin, with the conditioning caches.

- `ConsisIDAdapter`: identity-preserving video for cameo jobs (`ConsisIDPipeline`). Its `image`
  input is the cameo's face crop, or the first frame to continue from when the request has one.
- `CogVideoXAdapter`: text-to-video for jobs without cameos (`CogVideoXPipeline`), and
  image-to-video from a first frame (`CogVideoXImageToVideoPipeline`) when an `image_to_video`
  checkpoint is present beside it.
- `ReferenceToVideoAdapter`: video conditioned on one reference image per cameo
  (`WanVACEPipeline`), for jobs with a character or with several cameos. A first frame to
  continue from goes in as a one-frame VACE video with a mask that keeps it and fills the rest.

Prompt embeddings are cached per (model, prompt, negative prompt); identity conditioning per
(model, cameo, template version). Both caches live as long as the worker process.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generation.backends.base import (
    BackendConfig,
    BackendError,
    CheckpointMissing,
    RenderRequest,
    StepCallback,
)
from generation.backends.identity import FaceVisionTower, IdentityConditioning, build_identity_conditioning
from generation.backends.loading import (
    LruCache,
    checkpoint_version,
    frames_to_uint8,
    load_pipeline,
    torch_dtype,
    translate_device_errors,
)

logger = logging.getLogger(__name__)


class DiffusersAdapter:
    family = "diffusers"

    def __init__(self) -> None:
        self.pipe = None
        self.config: BackendConfig | None = None
        self.version = ""
        self.prompt_cache = LruCache(256)
        # One render at a time per loaded model; a worker process runs one GPU job anyway.
        self.lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self.family}@{self.version}"

    def _encode_prompt(self, pipe, model_id: str, request: RenderRequest, max_sequence_length: int):
        use_guidance = request.guidance_scale > 1.0
        key = (
            model_id,
            request.prompt,
            request.negative_prompt if use_guidance else None,
            max_sequence_length,
        )

        def encode():
            with torch.no_grad():
                positive, negative = pipe.encode_prompt(
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt if use_guidance else None,
                    do_classifier_free_guidance=use_guidance,
                    num_videos_per_prompt=1,
                    max_sequence_length=max_sequence_length,
                    device=pipe._execution_device,
                )
            return positive, negative

        return self.prompt_cache.get_or_make(key, encode)

    def _text_token_limit(self, pipe) -> int:
        return min(self.config.max_sequence_length, pipe.transformer.config.max_text_seq_length)

    def _step_callback(self, on_step: StepCallback | None, total: int):
        def callback(pipe, step, timestep, callback_kwargs):
            if on_step is not None:
                on_step(step + 1, total)
            return callback_kwargs

        return callback

    def _run(
        self, request: RenderRequest, on_step: StepCallback | None, *, pipe=None, model_id: str = "", **inputs
    ) -> np.ndarray:
        pipe = pipe or self.pipe
        max_len = self._text_token_limit(pipe)
        with self.lock:
            prompt_embeds, negative_embeds = self._encode_prompt(
                pipe, model_id or self.model_id, request, max_len
            )
            generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
            try:
                output = pipe(
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_embeds,
                    height=request.height,
                    width=request.width,
                    num_frames=request.num_frames,
                    num_inference_steps=request.num_inference_steps,
                    guidance_scale=request.guidance_scale,
                    generator=generator,
                    max_sequence_length=max_len,
                    output_type="np",
                    callback_on_step_end=self._step_callback(on_step, request.num_inference_steps),
                    **inputs,
                )
            except BackendError:
                raise
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                raise translate_device_errors(exc) from exc
        return frames_to_uint8(output.frames)


class ConsisIDAdapter(DiffusersAdapter):
    family = "consisid"

    def __init__(self) -> None:
        super().__init__()
        self.tower: FaceVisionTower | None = None
        self.identity_cache = LruCache(64)

    def load(self, config: BackendConfig) -> None:
        from diffusers import ConsisIDPipeline

        self.config = config
        self.pipe = load_pipeline(ConsisIDPipeline, config.model_dir, config)
        self.tower = FaceVisionTower(
            config.model_dir / "face_vision", device=config.device, dtype=torch_dtype(config.dtype)
        )
        self.version = checkpoint_version(config.model_dir)
        self.prompt_cache = LruCache(config.prompt_cache_size)
        self.identity_cache = LruCache(config.identity_cache_size)

    def identity_conditioning(self, request: RenderRequest) -> IdentityConditioning:
        identity = request.identity
        transformer = self.pipe.transformer.config
        return self.identity_cache.get_or_make(
            (self.model_id, *identity.cache_key),
            lambda: build_identity_conditioning(
                identity,
                tower=self.tower,
                num_scales=transformer.LFE_num_scale,
                id_dim=transformer.LFE_id_dim,
                dtype=self.pipe.transformer.dtype,
            ),
        )

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        if request.identity is None:
            raise BackendError("The identity-preserving model needs a cameo.", code="invalid_request")
        conditioning = self.identity_conditioning(request)
        image = (
            request.init_image.convert("RGB") if request.init_image is not None else conditioning.face_image
        )
        return self._run(
            request,
            on_step,
            image=image,
            id_cond=conditioning.id_cond,
            id_vit_hidden=conditioning.id_vit_hidden,
        )


class CogVideoXAdapter(DiffusersAdapter):
    family = "cogvideox"

    def __init__(self) -> None:
        super().__init__()
        self.image_pipe = None

    def load(self, config: BackendConfig) -> None:
        from diffusers import CogVideoXImageToVideoPipeline, CogVideoXPipeline

        self.config = config
        self.pipe = load_pipeline(CogVideoXPipeline, config.model_dir, config)
        self.version = checkpoint_version(config.model_dir)
        image_dir = image_to_video_dir(config.model_dir)
        if (image_dir / "model_index.json").exists():
            self.image_pipe = load_pipeline(CogVideoXImageToVideoPipeline, image_dir, config)
        self.prompt_cache = LruCache(config.prompt_cache_size)

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        if request.init_image is None:
            return self._run(request, on_step)
        if self.image_pipe is None:
            raise BackendError(
                f"Continuing from a frame needs an image-to-video checkpoint in {image_to_video_dir(self.config.model_dir)}.",
                code="model_unavailable",
            )
        return self._run(
            request,
            on_step,
            pipe=self.image_pipe,
            model_id=f"{self.model_id}/image_to_video",
            image=request.init_image.convert("RGB"),
        )


def image_to_video_dir(text_to_video_dir: Path) -> Path:
    return text_to_video_dir.parent / "image_to_video"


class ReferenceToVideoAdapter(DiffusersAdapter):
    """One reference image per cameo, in the job's order. The pipeline VAE-encodes them on each
    call as leading latent frames that it drops before decoding, so there is no conditioning of
    ours to cache beyond the prompt embeddings."""

    family = "wan_vace"

    def load(self, config: BackendConfig) -> None:
        from diffusers import WanVACEPipeline
        from diffusers.utils import is_ftfy_available

        if not is_ftfy_available():
            raise CheckpointMissing(
                "WanVACEPipeline cleans every prompt with ftfy: install the ftfy package."
            )
        self.config = config
        self.pipe = load_pipeline(WanVACEPipeline, config.model_dir, config)
        self.version = checkpoint_version(config.model_dir)
        self.prompt_cache = LruCache(config.prompt_cache_size)

    def _text_token_limit(self, pipe) -> int:
        # Wan pads every prompt to this length; its transformer has no text length of its own.
        return min(self.config.max_sequence_length, pipe.tokenizer.model_max_length)

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        if not request.references:
            raise BackendError("The reference-to-video model needs a cameo.", code="invalid_request")
        inputs = {"reference_images": [reference.image.convert("RGB") for reference in request.references]}
        if request.init_image is not None:
            inputs["video"], inputs["mask"] = continuation_video(request)
        return self._run(request, on_step, **inputs)


def continuation_video(request: RenderRequest) -> tuple[list[Image.Image], list[Image.Image]]:
    """VACE's inputs for "start from this frame": the frame, then neutral grey frames; the mask
    keeps the first (black) and has the model make the others (white)."""
    size = (request.width, request.height)
    first = request.init_image.convert("RGB").resize(size, Image.BICUBIC)
    blank = Image.new("RGB", size, (128, 128, 128))
    keep, make = Image.new("L", size, 0), Image.new("L", size, 255)
    rest = request.num_frames - 1
    return [first, *[blank] * rest], [keep, *[make] * rest]
