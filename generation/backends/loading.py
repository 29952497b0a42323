"""Loading diffusers pipelines from a local directory, with the memory savers the settings ask for.

Nothing here downloads: a directory that is not a complete diffusers pipeline is a
`CheckpointMissing` naming the directory and what it must contain.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import torch

from generation.backends.base import BackendConfig, CheckpointMissing, OutOfMemory

logger = logging.getLogger(__name__)

PIPELINE_PARTS = ("model_index.json", "scheduler", "text_encoder", "tokenizer", "transformer", "vae")
# What a pipeline class holds beyond PIPELINE_PARTS: LTX-2's text connectors and its audio decoder
# and vocoder, Stable Audio's projection of the prompt and the clip's start and end seconds.
EXTRA_PIPELINE_PARTS = {
    "LTX2Pipeline": ("connectors", "audio_vae", "vocoder"),
    "StableAudioPipeline": ("projection_model",),
}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16}
DTYPES.update({"bfloat16": torch.bfloat16, "bf16": torch.bfloat16})


def torch_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name.lower()]
    except KeyError as exc:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPES)}") from exc


def pipeline_parts(pipeline_class: str) -> tuple[str, ...]:
    """What a saved `pipeline_class` directory must hold."""
    return PIPELINE_PARTS + EXTRA_PIPELINE_PARTS.get(pipeline_class, ())


def require_pipeline_dir(path: Path, pipeline_class: str) -> None:
    parts = pipeline_parts(pipeline_class)
    missing = [part for part in parts if not (path / part).exists()]
    if missing:
        raise CheckpointMissing(
            f"The {pipeline_class} checkpoint directory {path} is incomplete: it must hold a diffusers "
            f"pipeline saved with save_pretrained ({', '.join(parts)}); missing: "
            f"{', '.join(missing)}."
        )
    declared = json.loads((path / "model_index.json").read_text()).get("_class_name")
    if declared != pipeline_class:
        raise CheckpointMissing(
            f"{path}/model_index.json declares {declared!r}, expected {pipeline_class!r}."
        )


def checkpoint_version(path: Path) -> str:
    """A short digest of the configs, so provenance names the exact model that rendered a video."""
    digest = hashlib.sha256()
    for name in ("model_index.json", "transformer/config.json", "vae/config.json"):
        file = path / name
        if file.exists():
            digest.update(file.read_bytes())
    for weights in sorted((path / "transformer").glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]


def load_pipeline(pipeline_cls: type, path: Path, config: BackendConfig):
    return place_pipeline(read_pipeline(pipeline_cls, path, config), config)


def read_pipeline(pipeline_cls: type, path: Path, config: BackendConfig):
    """The pipeline in `path` with the VAE memory savers on, not yet on its device: a pipeline
    made from its components (`from_pipe`) before `place_pipeline` shares the placement."""
    require_pipeline_dir(path, pipeline_cls.__name__)
    pipe = pipeline_cls.from_pretrained(str(path), dtype=torch_dtype(config.dtype), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    if config.vae_tiling:
        pipe.vae.enable_tiling()
    if config.vae_slicing:
        pipe.vae.enable_slicing()
    return pipe


def place_pipeline(pipe, config: BackendConfig):
    if config.cpu_offload and config.device.startswith("cuda"):
        # Offload moves each component to the GPU only while it runs.
        pipe.enable_model_cpu_offload(device=config.device)
    else:
        pipe.to(config.device)
    return pipe


class LruCache:
    """A bounded in-process cache; counts hits and misses for the benchmark."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: Hashable, make):
        if key in self.items:
            self.hits += 1
            self.items.move_to_end(key)
            return self.items[key]
        self.misses += 1
        value = make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value

    def clear(self) -> None:
        self.items.clear()
        self.hits = self.misses = 0


def translate_device_errors(exc: BaseException) -> BaseException:
    """CUDA out-of-memory becomes a job failure with its own code instead of a crash."""
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return OutOfMemory(f"The GPU ran out of memory while rendering: {exc}")
    return exc


def frames_to_uint8(frames) -> Any:
    """Pipeline output (np, float in 0..1, shape (1, F, H, W, 3)) as uint8 (F, H, W, 3)."""
    import numpy as np

    array = np.asarray(frames)
    if array.ndim == 5:
        array = array[0]
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
