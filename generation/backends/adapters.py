"""Adapters over diffusers pipelines: one per model family, thin, with the conditioning caches.

- `ConsisIDAdapter`: identity-preserving video for cameo jobs (`ConsisIDPipeline`). Its `image`
  input is the cameo's face crop, or the first frame to continue from when the request has one.
- `CogVideoXAdapter`: text-to-video for jobs without cameos (`CogVideoXPipeline`), and
  image-to-video from a first frame (`CogVideoXImageToVideoPipeline`) when an `image_to_video`
  checkpoint is present beside it.
- `ReferenceToVideoAdapter`: video conditioned on one reference image per cameo
  (`WanVACEPipeline`), for jobs with a character or with several cameos. A first frame to
  continue from goes in as a one-frame VACE video with a mask that keeps it and fills the rest.
- `LTX2Adapter`: picture and sound in one pass for jobs with sound and without cameos
  (`LTX2Pipeline`), and from a first frame (`LTX2ImageToVideoPipeline` over the same components).
- `TextToAudioAdapter`: the sound track of a video another model draws (`StableAudioPipeline`).

Prompt embeddings are cached per (model, prompt, negative prompt); identity conditioning per
(model, cameo, template version). Both caches live as long as the worker process.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generation.backends.base import (
    BackendConfig,
    BackendError,
    CheckpointMissing,
    Rendered,
    RenderRequest,
    Soundtrack,
    StepCallback,
)
from generation.backends.identity import FaceVisionTower, IdentityConditioning, build_identity_conditioning
from generation.backends.loading import (
    LruCache,
    checkpoint_version,
    frames_to_uint8,
    load_pipeline,
    place_pipeline,
    read_pipeline,
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
            output = self._call(
                pipe,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_embeds,
                height=request.height,
                width=request.width,
                num_frames=request.num_frames,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=seeded(request.seed),
                max_sequence_length=max_len,
                output_type="np",
                callback_on_step_end=self._step_callback(on_step, request.num_inference_steps),
                **inputs,
            )
        return frames_to_uint8(output.frames)

    @staticmethod
    def _call(pipe, **inputs):
        """One pipeline call. A `BackendError` raised from a step callback (a cancelled render)
        passes through; running out of device memory becomes `OutOfMemory`."""
        try:
            return pipe(**inputs)
        except BackendError:
            raise
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            raise translate_device_errors(exc) from exc


def seeded(seed: int) -> torch.Generator:
    # A CPU generator draws the same noise whatever device renders.
    return torch.Generator(device="cpu").manual_seed(int(seed))


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


# LTX2Pipeline.check_inputs wants both sides a multiple of this.
LTX2_SIZE_MULTIPLE = 32
# Guidance beyond classifier-free guidance stays off: spatio-temporal guidance and modality
# isolation each cost another transformer pass per step, and a request carries one guidance scale,
# which the sound shares (the pipeline takes the picture's scale where the sound's is None).
LTX2_GUIDANCE = {
    "audio_guidance_scale": None,
    "guidance_rescale": 0.0,
    "audio_guidance_rescale": None,
    "stg_scale": 0.0,
    "audio_stg_scale": 0.0,
    "spatio_temporal_guidance_blocks": None,
    "modality_scale": 1.0,
    "audio_modality_scale": None,
}


class LTX2Adapter(DiffusersAdapter):
    """Picture and sound in one pass. From a first frame it renders through
    `LTX2ImageToVideoPipeline` made from the loaded components, so the weights are held once."""

    family = "ltx2"

    def __init__(self) -> None:
        super().__init__()
        self.image_pipe = None

    def load(self, config: BackendConfig) -> None:
        from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

        self.config = config
        pipe = read_pipeline(LTX2Pipeline, config.model_dir, config)
        # Made before placing, so the placement (or the offload hooks) of the shared components
        # serves both pipelines.
        self.image_pipe = LTX2ImageToVideoPipeline.from_pipe(pipe)
        self.image_pipe.set_progress_bar_config(disable=True)
        self.pipe = place_pipeline(pipe, config)
        self.version = checkpoint_version(config.model_dir)
        self.prompt_cache = LruCache(config.prompt_cache_size)

    @property
    def sample_rate(self) -> int:
        return int(self.pipe.vocoder.config.output_sampling_rate)

    def _text_token_limit(self, pipe) -> int:
        # Gemma pads every prompt to this length. Connectors with learnable registers put them in
        # place of the padding a whole block of registers at a time, so the length is a multiple
        # of their count.
        limit = min(self.config.max_sequence_length, pipe.tokenizer.model_max_length)
        connectors = (pipe.connectors.video_connector, pipe.connectors.audio_connector)
        counts = [
            connector.num_learnable_registers for connector in connectors if connector.num_learnable_registers
        ]
        block = math.lcm(*counts) if counts else 1
        return -(-limit // block) * block

    def _encode_prompt(self, pipe, model_id: str, request: RenderRequest, max_sequence_length: int) -> dict:
        use_guidance = request.guidance_scale > 1.0
        key = (
            model_id,
            request.prompt,
            request.negative_prompt if use_guidance else None,
            max_sequence_length,
        )

        def encode() -> dict:
            with torch.no_grad():
                positive, positive_mask, negative, negative_mask = pipe.encode_prompt(
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt if use_guidance else None,
                    do_classifier_free_guidance=use_guidance,
                    num_videos_per_prompt=1,
                    max_sequence_length=max_sequence_length,
                    device=pipe._execution_device,
                )
            return {
                "prompt_embeds": positive,
                "prompt_attention_mask": positive_mask,
                "negative_prompt_embeds": negative,
                "negative_prompt_attention_mask": negative_mask,
            }

        return self.prompt_cache.get_or_make(key, encode)

    def generate(self, request: RenderRequest, on_step: StepCallback | None = None) -> np.ndarray:
        return self.generate_with_sound(request, on_step).frames

    def generate_with_sound(self, request: RenderRequest, on_step: StepCallback | None = None) -> Rendered:
        pipe = self.pipe if request.init_image is None else self.image_pipe
        multiple = math.lcm(LTX2_SIZE_MULTIPLE, pipe.vae_spatial_compression_ratio)
        width, height = size_on_grid(request.width, multiple), size_on_grid(request.height, multiple)
        inputs = {}
        if request.init_image is not None:
            inputs["image"] = cover(request.init_image.convert("RGB"), (width, height))
        if request.duration_s > 0 and request.num_frames > 1:
            # The frames are held to fill the clip, so this is the rate they play at; the sound
            # comes out num_frames / frame_rate seconds long, about the clip's length.
            inputs["frame_rate"] = (request.num_frames - 1) / request.duration_s
        max_len = self._text_token_limit(pipe)
        with self.lock:
            embeddings = self._encode_prompt(pipe, self.model_id, request, max_len)
            output = self._call(
                pipe,
                **embeddings,
                height=height,
                width=width,
                num_frames=frames_on_grid(request.num_frames, pipe.vae_temporal_compression_ratio),
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=seeded(request.seed),
                max_sequence_length=max_len,
                output_type="np",
                callback_on_step_end=self._step_callback(on_step, request.num_inference_steps),
                # LTX-2.3 and later (prompt-modulated cross-attention) were trained to modulate
                # the attention between picture and sound by the other one's noise level.
                use_cross_timestep=bool(getattr(pipe.transformer, "prompt_modulation", False)),
                **LTX2_GUIDANCE,
                **inputs,
            )
        frames = frames_to_uint8(output.frames)[: request.num_frames]
        return Rendered(
            frames=fit_frames(frames, request.width, request.height),
            sound=soundtrack(output.audio, self.sample_rate),
        )


class TextToAudioAdapter(DiffusersAdapter):
    """A sound track from the prompt, as long as the clip (`StableAudioPipeline`)."""

    family = "stable_audio"

    def load(self, config: BackendConfig) -> None:
        from diffusers import StableAudioPipeline
        from diffusers.utils import is_torchsde_available

        if not is_torchsde_available():
            raise CheckpointMissing(
                "Stable Audio's scheduler (CosineDPMSolverMultistepScheduler) draws its noise with "
                "torchsde: install the torchsde package."
            )
        self.config = config
        self.pipe = load_pipeline(StableAudioPipeline, config.model_dir, config)
        self.version = checkpoint_version(config.model_dir)

    @property
    def max_duration_s(self) -> float:
        """The longest track the model makes: it denoises a fixed number of latent samples."""
        pipe = self.pipe
        made = pipe.transformer.config.sample_size * pipe.vae.hop_length / pipe.vae.config.sampling_rate
        return min(made, pipe.projection_model.config.max_value)

    def generate_audio(
        self,
        *,
        prompt: str,
        seed: int,
        duration_s: float,
        num_inference_steps: int,
        on_step: StepCallback | None = None,
    ) -> Soundtrack:
        if duration_s <= 0:
            raise BackendError("A sound track needs the length of its clip.", code="invalid_request")

        def callback(step: int, timestep, latents) -> None:
            if on_step is not None:
                on_step(step + 1, num_inference_steps)

        with self.lock, warnings.catch_warnings():
            # torchsde warns at each step that the scheduler's noise times fall a rounding error
            # outside the interval it was made for.
            warnings.filterwarnings("ignore", message="Should have", module="torchsde")
            output = self._call(
                self.pipe,
                prompt=prompt,
                # A longer clip gets the longest track the model makes; the caller fits it.
                audio_end_in_s=min(duration_s, self.max_duration_s),
                num_inference_steps=num_inference_steps,
                generator=seeded(seed),
                output_type="np",
                callback=callback,
                callback_steps=1,
            )
        return soundtrack(output.audios, self.pipe.vae.config.sampling_rate)


def soundtrack(waveforms, sample_rate: int) -> Soundtrack:
    """The first of a pipeline's waveforms (batch, channels, samples), a tensor or an array, as
    float32 samples (samples, channels) in [-1, 1]."""
    if isinstance(waveforms, torch.Tensor):
        waveforms = waveforms.detach().float().cpu().numpy()
    samples = np.clip(np.asarray(waveforms, dtype=np.float32)[0].T, -1.0, 1.0)
    return Soundtrack(samples=np.ascontiguousarray(samples), sample_rate=int(sample_rate))


def size_on_grid(size: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that holds `size` pixels."""
    return -(-size // multiple) * multiple


def frames_on_grid(num_frames: int, temporal_compression: int) -> int:
    """The fewest frames, at least `num_frames`, that a causal video VAE decodes to: one plus a
    multiple of its temporal compression."""
    return size_on_grid(max(num_frames - 1, 0), temporal_compression) + 1


def cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled to cover `size` and cut to it around its centre, so nothing is stretched."""
    if image.size == size:
        return image
    width, height = size
    scale = max(width / image.width, height / image.height)
    scaled = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BICUBIC
    )
    left, top = (scaled.width - width) // 2, (scaled.height - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames rendered on a model's size grid brought to the asked size (see `cover`)."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(cover(Image.fromarray(frame), (width, height))) for frame in frames])
