"""Identity conditioning for ConsisID, built from what a cameo stores: its template and face crop.

ConsisID's transformer takes three identity inputs (see diffusers' `ConsisIDPipeline.__call__`):

- `id_cond` (1, LFE_id_dim): the insightface antelopev2 face embedding (512-d) followed by the
  L2-normalised image embedding of the face crop from a CLIP-style vision tower (768-d for the
  released model, 1280 in all).
- `id_vit_hidden`: a list of `LFE_num_scale` hidden-state tensors of that vision tower, each
  (1, tokens, LFE_vit_dim): the high-frequency detail of the face.
- `image`: the face image the video starts from (here: the aligned crop stored at enrollment).
  `kps_cond` is only used by checkpoints trained with `is_kps`; cameos store no 5-point keypoints,
  so it is left out.

The face embedding. A template made by insightface (512-d) is used as it is. A template from the
dlib ResNet encoder (128-d, the encoder the embedded default and the tests use) is mapped into the
512-d slot by a fixed matrix with orthonormal columns (seeded, the same in every process): the map is
an isometry, so distances and angles between identities are kept exactly and two cameos never
collapse onto one conditioning. The released ConsisID weights were trained on antelopev2 vectors, so
a mapped dlib vector keeps identities apart but is not the embedding that model learned; production
enrolls with insightface.

The vision tower. ConsisID was trained with EVA02-CLIP-L-14-336, which is not a transformers model.
The production adapter loads a `CLIPVisionModelWithProjection` from `<consisid dir>/face_vision/`
(e.g. CLIP ViT-L/14-336: 1024-wide hidden states, 577 tokens, 768-d projection, the shapes the
released LFE expects). The hidden states handed over are `LFE_num_scale` layers evenly spaced up to
the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generation.backends.base import CheckpointMissing, IdentityInput

FACE_EMBEDDING_DIM = 512
DLIB_EMBEDDING_DIM = 128
MAPPING_SEED = 20250101


def _orthonormal_map(source_dim: int, target_dim: int) -> np.ndarray:
    rng = np.random.default_rng(MAPPING_SEED + source_dim)
    gaussian = rng.standard_normal((target_dim, source_dim))
    basis, _ = np.linalg.qr(gaussian)
    return basis.astype(np.float32)  # (target_dim, source_dim), orthonormal columns


_MAPS: dict[int, np.ndarray] = {}


def face_embedding_512(embedding: np.ndarray) -> np.ndarray:
    """The cameo's template in the 512-d slot ConsisID expects, L2-normalised."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if vector.shape[0] != FACE_EMBEDDING_DIM:
        if vector.shape[0] > FACE_EMBEDDING_DIM:
            raise ValueError(f"a {vector.shape[0]}-d face embedding does not fit the 512-d slot")
        basis = _MAPS.setdefault(vector.shape[0], _orthonormal_map(vector.shape[0], FACE_EMBEDDING_DIM))
        vector = basis @ vector
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass
class IdentityConditioning:
    id_cond: torch.Tensor
    id_vit_hidden: list[torch.Tensor]
    face_image: Image.Image


class FaceVisionTower:
    """A CLIP vision model (with projection) loaded from a local directory."""

    def __init__(self, path: Path, *, device: str, dtype: torch.dtype):
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        if not (path / "config.json").exists():
            raise CheckpointMissing(
                f"The face vision encoder directory {path} is missing: it must hold a transformers "
                "CLIPVisionModelWithProjection (config.json, model.safetensors, preprocessor_config.json)."
            )
        self.model = CLIPVisionModelWithProjection.from_pretrained(
            str(path), dtype=dtype, local_files_only=True
        ).to(device)
        self.model.eval()
        self.processor = CLIPImageProcessor.from_pretrained(str(path), local_files_only=True)
        self.device = device
        self.dtype = dtype

    @torch.no_grad()
    def features(self, face: Image.Image, num_scales: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pixels = self.processor(images=face.convert("RGB"), return_tensors="pt").pixel_values
        output = self.model(pixel_values=pixels.to(self.device, self.dtype), output_hidden_states=True)
        image_embed = output.image_embeds
        image_embed = image_embed / image_embed.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        layers = len(output.hidden_states) - 1
        picks = [round((index + 1) * layers / num_scales) for index in range(num_scales)]
        return image_embed, [output.hidden_states[pick] for pick in picks]


def build_identity_conditioning(
    identity: IdentityInput, *, tower: FaceVisionTower, num_scales: int, id_dim: int, dtype: torch.dtype
) -> IdentityConditioning:
    face = identity.face_crop.convert("RGB")
    face_vector = torch.from_numpy(face_embedding_512(identity.embedding)).unsqueeze(0)
    image_embed, hidden = tower.features(face, num_scales)
    id_cond = torch.cat([face_vector.to(image_embed.device, image_embed.dtype), image_embed], dim=-1)
    if id_cond.shape[-1] != id_dim:
        raise CheckpointMissing(
            f"The face vision encoder gives {id_cond.shape[-1]}-d identity vectors (512 + "
            f"{image_embed.shape[-1]}) but the transformer expects LFE_id_dim={id_dim}."
        )
    return IdentityConditioning(
        id_cond=id_cond.to(dtype), id_vit_hidden=[h.to(dtype) for h in hidden], face_image=face
    )
