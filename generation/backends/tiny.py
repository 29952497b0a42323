"""The `tiny` model set: the production pipeline classes built from tiny configs with seeded weights.

Built once into a cache directory with `save_pretrained` (the same layout a real model directory
has) and then loaded through the production adapters with `from_pretrained`, so tests and the
embedded default run the real loading and rendering path on a CPU in about a second per video.
The text encoder is a small `T5EncoderModel` (`UMT5EncoderModel` for Wan); its tokenizer is a T5
Unigram tokenizer (built with `tokenizers`) over single characters, so any two different prompts
give different token ids.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from pathlib import Path

import torch

# Bump when the tiny configs change, so old cache directories are rebuilt rather than reused.
TINY_VERSION = "4"
TEXT_DIM = 32
MAX_TEXT_TOKENS = 128
VISION_HIDDEN = 16
VISION_PROJECTION = 16
VISION_LAYERS = 2
FACE_EMBEDDING_DIM = 512


def _tokenizer():
    from transformers import T5TokenizerFast

    characters = [chr(code) for code in range(33, 127)] + [chr(code) for code in range(0xA1, 0x250)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(char, -5.0) for char in characters] + [("\u2581" + char, -5.5) for char in characters]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=MAX_TEXT_TOKENS)


def _text_encoder(vocab_size: int, *, umt5: bool = False):
    """A T5 encoder (CogVideoX, ConsisID), or its UMT5 variant (Wan) with the same shape."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    torch.manual_seed(1)
    config = config_class(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return model_class(config)


def _vae():
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(2)
    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def _common_transformer_config() -> dict:
    return {
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "out_channels": 4,
        "time_embed_dim": 2,
        "text_embed_dim": TEXT_DIM,
        "num_layers": 1,
        "sample_width": 8,
        "sample_height": 8,
        "sample_frames": 9,
        "patch_size": 2,
        "temporal_compression_ratio": 4,
        "max_text_seq_length": MAX_TEXT_TOKENS,
        "use_rotary_positional_embeddings": True,
        "use_learned_positional_embeddings": False,
    }


def _consisid_transformer():
    from diffusers import ConsisIDTransformer3DModel

    torch.manual_seed(3)
    inner_dim = 2 * 16
    return ConsisIDTransformer3DModel(
        in_channels=8,
        cross_attn_interval=1,
        is_kps=False,
        is_train_face=True,
        cross_attn_dim_head=8,
        cross_attn_num_heads=1,
        LFE_id_dim=FACE_EMBEDDING_DIM + VISION_PROJECTION,
        LFE_vit_dim=VISION_HIDDEN,
        LFE_depth=2,
        LFE_dim_head=8,
        LFE_num_heads=2,
        LFE_num_id_token=1,
        LFE_num_querie=2,
        # The transformer's perceiver cross-attention reads the LFE output at 2/3 of its width.
        LFE_output_dim=int(inner_dim / 3 * 2),
        LFE_ff_mult=1,
        LFE_num_scale=VISION_LAYERS,
        # Large enough that the face conditioning visibly changes the few-step tiny render.
        local_face_scale=4.0,
        **_common_transformer_config(),
    )


def _cogvideox_transformer(in_channels: int, seed: int):
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    return CogVideoXTransformer3DModel(in_channels=in_channels, **_common_transformer_config())


WAN_LATENT_CHANNELS = 4


def _wan_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(8)
    # Three spatial halvings, two temporal ones: 8x and 4x, the released Wan VAE's factors.
    return AutoencoderKLWan(
        base_dim=4,
        z_dim=WAN_LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * WAN_LATENT_CHANNELS,
        latents_std=[1.0] * WAN_LATENT_CHANNELS,
    )


def _wan_vace_transformer():
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(9)
    # VACE's control input: the inactive and reactive video latents side by side, then the mask
    # folded from each 8x8 pixel block into channels.
    control_channels = 2 * WAN_LATENT_CHANNELS + 8 * 8
    return WanVACETransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=WAN_LATENT_CHANNELS,
        out_channels=WAN_LATENT_CHANNELS,
        text_dim=TEXT_DIM,
        freq_dim=64,
        ffn_dim=64,
        num_layers=2,
        rope_max_seq_len=64,
        vace_layers=[0, 1],
        vace_in_channels=control_channels,
    )


def _face_vision(path: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(5)
    config = CLIPVisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=32,
        projection_dim=VISION_PROJECTION,
        num_hidden_layers=VISION_LAYERS,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(str(path))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        str(path)
    )


def _build(root: Path) -> None:
    from diffusers import (
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        ConsisIDPipeline,
        FlowMatchEulerDiscreteScheduler,
        WanVACEPipeline,
    )

    tokenizer = _tokenizer()
    text_encoder = _text_encoder(len(tokenizer))
    vae = _vae()
    scheduler = CogVideoXDDIMScheduler()
    shared = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "scheduler": scheduler}
    ConsisIDPipeline(transformer=_consisid_transformer(), **shared).save_pretrained(str(root / "consisid"))
    _face_vision(root / "consisid" / "face_vision")
    CogVideoXPipeline(transformer=_cogvideox_transformer(4, 6), **shared).save_pretrained(
        str(root / "text_to_video")
    )
    CogVideoXImageToVideoPipeline(transformer=_cogvideox_transformer(8, 7), **shared).save_pretrained(
        str(root / "image_to_video")
    )
    WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=_text_encoder(len(tokenizer), umt5=True),
        vae=_wan_vae(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=_wan_vace_transformer(),
    ).save_pretrained(str(root / "reference_to_video"))
    (root / "tiny.json").write_text(json.dumps({"version": TINY_VERSION}))


def ensure_tiny_models(cache_dir: Path) -> Path:
    """The tiny model directory, built on first use; concurrent processes wait for one builder."""
    cache_dir = Path(cache_dir)
    root = cache_dir / f"tiny-v{TINY_VERSION}"
    marker = root / "tiny.json"
    if marker.exists():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return root
        staging = Path(tempfile.mkdtemp(prefix="tiny-build-", dir=cache_dir))
        try:
            _build(staging)
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root
