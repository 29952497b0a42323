"""The `tiny` model set: the production pipeline classes built from tiny configs with seeded weights.

Built once into a cache directory with `save_pretrained` (the same layout a real model directory
has) and then loaded through the production adapters with `from_pretrained`, so tests and the
embedded default run the real loading and rendering path on a CPU in about a second per video.
The text encoder is a small `T5EncoderModel` (`UMT5EncoderModel` for Wan; Stable Audio's is a T5
too); its tokenizer is a T5 Unigram tokenizer (built with `tokenizers`) over single characters, so
any two different prompts give different token ids. LTX-2 reads its prompt with a small Gemma 3
(`Gemma3ForConditionalGeneration`, a text and a vision tower) and a Gemma BPE tokenizer over single
characters that falls back to bytes, so every prompt tokenizes.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from pathlib import Path

import torch

# Bump when the tiny configs change, so old cache directories are rebuilt rather than reused.
TINY_VERSION = "5"
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


GEMMA_HIDDEN = 32
GEMMA_LAYERS = 2
GEMMA_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
GEMMA_IMAGE_TOKENS = ("<start_of_image>", "<end_of_image>", "<image_soft_token>")


def _gemma_tokenizer():
    """Gemma's BPE tokenizer with no merges: one token per character, and a character outside the
    vocabulary as its UTF-8 bytes (Gemma's byte fallback)."""
    from transformers import GemmaTokenizer

    characters = [chr(code) for code in range(33, 127)] + [chr(code) for code in range(0xA1, 0x250)]
    tokens = [*GEMMA_SPECIAL_TOKENS, *GEMMA_IMAGE_TOKENS, "\u2581"]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)] + characters
    return GemmaTokenizer(
        vocab={token: index for index, token in enumerate(tokens)}, model_max_length=MAX_TEXT_TOKENS
    )


def _gemma_text_encoder(tokenizer):
    """LTX-2's text encoder class with a tiny text tower (whose every hidden state the pipeline
    reads) and a tiny vision tower; the image tokens are the tokenizer's own."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    image_token = {token: tokenizer.convert_tokens_to_ids(token) for token in GEMMA_IMAGE_TOKENS}
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": GEMMA_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 2 * MAX_TEXT_TOKENS,
            "sliding_window": MAX_TEXT_TOKENS,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 8,
            "patch_size": 4,
        },
        # A 2x2 patch grid pooled to 4 image tokens.
        mm_tokens_per_image=4,
        boi_token_index=image_token["<start_of_image>"],
        eoi_token_index=image_token["<end_of_image>"],
        image_token_index=image_token["<image_soft_token>"],
    )
    torch.manual_seed(10)
    return Gemma3ForConditionalGeneration(config).eval()


# The tiny LTX-2 video VAE: 4x4 pixel patches and one spatio-temporal block, so 8x spatial and 2x
# temporal compression (the released one compresses 32x and 8x).
LTX2_SPATIAL_COMPRESSION = 8
LTX2_TEMPORAL_COMPRESSION = 2


def _ltx2_transformer():
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(11)
    return LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=GEMMA_HIDDEN,
        rope_double_precision=False,
        rope_type="split",
        # The video positions are scaled back to frames and pixels by the VAE's factors.
        vae_scale_factors=(LTX2_TEMPORAL_COMPRESSION, LTX2_SPATIAL_COMPRESSION, LTX2_SPATIAL_COMPRESSION),
    )


def _ltx2_connectors():
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    torch.manual_seed(12)
    connector = {
        "num_attention_heads": 4,
        "attention_head_dim": 8,
        "num_layers": 1,
        "num_learnable_registers": None,
    }
    return LTX2TextConnectors(
        caption_channels=GEMMA_HIDDEN,
        # The pipeline stacks the embeddings and every layer's hidden states.
        text_proj_in_factor=GEMMA_LAYERS + 1,
        **{f"video_connector_{name}": value for name, value in connector.items()},
        **{f"audio_connector_{name}": value for name, value in connector.items()},
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    )


def _ltx2_vae():
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(13)
    return AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8,),
        decoder_block_out_channels=(8,),
        layers_per_block=(1,),
        decoder_layers_per_block=(1, 1),
        spatio_temporal_scaling=(True,),
        decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False),
        downsample_type=("spatial",),
        upsample_residual=(False,),
        upsample_factor=(1,),
        timestep_conditioning=False,
        patch_size=LTX2_SPATIAL_COMPRESSION // 2,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )


LTX2_AUDIO_RATE = 16000
LTX2_MEL_HOP = 160
LTX2_MEL_BINS = 8


def _ltx2_audio_vae():
    from diffusers import AutoencoderKLLTX2Audio

    torch.manual_seed(14)
    return AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=LTX2_AUDIO_RATE,
        mel_hop_length=LTX2_MEL_HOP,
        is_causal=True,
        mel_bins=LTX2_MEL_BINS,
    )


def _ltx2_vocoder():
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(15)
    # Upsampling each mel frame by the mel hop (4 * 5 * 8 = 160) makes a track as long as the clip
    # at the audio VAE's rate; each kernel is sized so that a stage multiplies the length exactly.
    vocoder = LTX2Vocoder(
        in_channels=2 * LTX2_MEL_BINS,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[8, 15, 16],
        upsample_factors=[4, 5, 8],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=LTX2_AUDIO_RATE,
    )
    _make_audible(vocoder, vocoder.conv_out.weight, gain=200.0)
    return vocoder


def _make_audible(decoder: torch.nn.Module, last_weight: torch.Tensor, *, gain: float) -> None:
    """A seeded audio decoder is dominated by its biases (a near-constant offset whatever it is
    given) and faint otherwise: without biases it makes silence of silence, and a louder last
    layer makes the track it decodes audible, so seed and prompt can be heard."""
    with torch.no_grad():
        for name, parameter in decoder.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
        last_weight.mul_(gain)


def _ltx2_pipeline():
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    tokenizer = _gemma_tokenizer()
    return LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_ltx2_vae(),
        audio_vae=_ltx2_audio_vae(),
        text_encoder=_gemma_text_encoder(tokenizer),
        tokenizer=tokenizer,
        connectors=_ltx2_connectors(),
        transformer=_ltx2_transformer(),
        vocoder=_ltx2_vocoder(),
    )


STABLE_AUDIO_RATE = 16000
STABLE_AUDIO_HOP = 4 * 8 * 8
STABLE_AUDIO_LATENT_CHANNELS = 4
STABLE_AUDIO_CONDITIONING_DIM = 8
# The longest track it makes; it always denoises this many seconds and cuts the track asked for.
STABLE_AUDIO_MAX_S = 20


def _stable_audio_vae():
    from diffusers import AutoencoderOobleck

    torch.manual_seed(16)
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * STABLE_AUDIO_LATENT_CHANNELS,
        downsampling_ratios=[4, 8, 8],
        channel_multiples=[1, 1, 1],
        decoder_channels=4,
        decoder_input_channels=STABLE_AUDIO_LATENT_CHANNELS,
        audio_channels=2,
        sampling_rate=STABLE_AUDIO_RATE,
    )
    # The last layer is weight-normalised: its gain is weight_g.
    _make_audible(vae.decoder, vae.decoder.conv2.weight_g, gain=20.0)
    return vae


def _stable_audio_transformer():
    from diffusers import StableAudioDiTModel

    torch.manual_seed(17)
    transformer = StableAudioDiTModel(
        sample_size=STABLE_AUDIO_MAX_S * STABLE_AUDIO_RATE // STABLE_AUDIO_HOP,
        in_channels=STABLE_AUDIO_LATENT_CHANNELS,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=STABLE_AUDIO_LATENT_CHANNELS,
        cross_attention_dim=8,
        time_proj_dim=16,
        # The start and end seconds, side by side.
        global_states_input_dim=2 * STABLE_AUDIO_CONDITIONING_DIM,
        cross_attention_input_dim=STABLE_AUDIO_CONDITIONING_DIM,
    )
    with torch.no_grad():
        # The prompt's few tokens share the cross-attention with a long padding; a stronger
        # cross-attention output makes two prompts audibly different.
        for block in transformer.transformer_blocks:
            block.attn2.to_out[0].weight.mul_(30.0)
    return transformer


def _stable_audio_pipeline(tokenizer, text_encoder):
    from diffusers import CosineDPMSolverMultistepScheduler, StableAudioPipeline, StableAudioProjectionModel

    torch.manual_seed(18)
    projection_model = StableAudioProjectionModel(
        text_encoder_dim=TEXT_DIM,
        conditioning_dim=STABLE_AUDIO_CONDITIONING_DIM,
        min_value=0,
        max_value=STABLE_AUDIO_MAX_S,
    )
    # stable-audio-open-1.0's scheduler settings.
    scheduler = CosineDPMSolverMultistepScheduler(
        solver_order=2, prediction_type="v_prediction", sigma_data=1.0, sigma_schedule="exponential"
    )
    return StableAudioPipeline(
        vae=_stable_audio_vae(),
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=tokenizer,
        transformer=_stable_audio_transformer(),
        scheduler=scheduler,
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
    _ltx2_pipeline().save_pretrained(str(root / "audio_video"))
    _stable_audio_pipeline(tokenizer, text_encoder).save_pretrained(str(root / "text_to_audio"))
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
