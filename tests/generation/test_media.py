import json
import uuid

import av
import numpy as np
import pytest

from generation import encoding, labels, watermark
from tests.generation.conftest import render_request

FPS = 8


@pytest.fixture(scope="module")
def clip(tiny_renderer):
    frames = tiny_renderer.generate(render_request())
    return encoding.stretch_to_duration(frames, duration_s=5, fps=FPS)


def test_frames_become_an_h264_mp4_of_the_requested_duration(clip):
    data = encoding.encode_mp4(clip, fps=FPS)
    with av.open(__import__("io").BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (64, 64)
        frames = sum(1 for _ in container.decode(stream))
    assert frames == 5 * FPS


def test_last_frame_matches_the_last_decoded_frame(clip):
    data = encoding.encode_mp4(clip, fps=FPS)
    last = encoding.last_frame(__import__("io").BytesIO(data))
    assert np.array_equal(last, encoding.decode_mp4(data).frames[-1])
    with pytest.raises((av.error.FFmpegError, ValueError)):
        encoding.last_frame(b"not a video" * 10)


def test_decoding_stops_at_the_pixel_budget_and_keeps_the_frames_as_decoded(clip):
    data = encoding.encode_mp4(clip, fps=FPS)
    whole = encoding.decode_mp4(data).frames
    frame_pixels = 64 * 64
    budgeted = encoding.decode_mp4(data, max_pixels=frame_pixels * 7 + 1).frames
    assert budgeted.shape == (8, 64, 64, 3)
    assert np.array_equal(budgeted, whole[:8])
    assert len(encoding.decode_mp4(data, max_frames=3, max_pixels=10**9).frames) == 3


def test_frames_larger_than_allowed_are_refused_before_decoding(clip, monkeypatch):
    data = encoding.encode_mp4(clip, fps=FPS)
    decoded = []
    original = av.VideoFrame.to_ndarray
    monkeypatch.setattr(
        av.VideoFrame, "to_ndarray", lambda self, **kw: decoded.append(1) or original(self, **kw)
    )
    with pytest.raises(encoding.FrameTooLarge) as refusal:
        encoding.decode_mp4(data, max_frame_pixels=64 * 64 - 1)
    assert (refusal.value.width, refusal.value.height) == (64, 64) and not decoded
    assert len(encoding.decode_mp4(data, max_frame_pixels=64 * 64).frames) == 5 * FPS


def test_aigc_metadata_reads_back_from_the_file(clip):
    content_id = str(uuid.uuid4())
    tag = labels.aigc_metadata(content_id=content_id, producer="reelforge")
    decoded = encoding.decode_mp4(encoding.encode_mp4(clip, fps=FPS, metadata={labels.AIGC_KEY: tag}))
    label = labels.read_aigc_metadata(decoded.metadata)
    assert set(label) == {
        "Label",
        "ContentProducer",
        "ProduceID",
        "ReservedCode1",
        "ContentPropagator",
        "PropagateID",
        "ReservedCode2",
    }
    assert label["ProduceID"] == content_id and label["Label"] == "1"
    assert json.loads(decoded.metadata["AIGC"]) == label


def test_visible_label_for_two_seconds_then_a_moving_mark(clip):
    stamped = labels.stamp_visible_label(clip, fps=FPS, platform_mark="Reelforge")
    layout = labels.label_layout(64, 64, "Reelforge")
    assert layout.text_px >= 0.05 * 64
    changed = np.abs(stamped.astype(int) - clip.astype(int)).sum(axis=3) > 0
    # The label box covers the top-left corner on every frame of the first 2 s.
    assert all(changed[index, :6, :6].mean() > 0.9 for index in range(2 * FPS))
    assert not changed[2 * FPS :, :6, :6].all()
    # After that, a mark is drawn and it moves.
    positions = [
        tuple(np.argwhere(changed[index]).mean(axis=0).round()) for index in range(2 * FPS, len(clip))
    ]
    assert all(changed[index].any() for index in range(2 * FPS, len(clip)))
    assert len(set(positions)) > 3


def test_label_text_stays_at_least_five_percent_of_the_short_side():
    for width, height in [(64, 64), (48, 80), (480, 720), (1280, 720)]:
        assert labels.label_layout(width, height, "Reelforge").text_px >= 0.05 * min(width, height)


def test_watermark_carries_the_content_id_through_encoding(clip):
    content_id = uuid.uuid4()
    marked = watermark.embed(clip, content_id)
    psnr = 10 * np.log10(255**2 / np.mean((marked.astype(float) - clip) ** 2))
    assert psnr > 28
    decoded = encoding.decode_mp4(encoding.encode_mp4(marked, fps=FPS))
    reading = watermark.read(decoded.frames)
    assert reading.key == watermark.key_of(content_id)
    low, high = watermark.content_id_bounds(reading.key)
    assert low <= content_id <= high


def test_watermark_survives_a_lower_bitrate_a_smaller_size_and_any_two_seconds(clip):
    content_id = uuid.UUID("6f1c2a8e-93b4-4d0e-8a77-2f5b9c1d3e40")
    # At 64x64 a cell is under 5 pixels; halving is measured at a size the service renders at.
    large = np.repeat(np.repeat(clip, 4, axis=1), 4, axis=2)
    marked = watermark.embed(large, content_id)
    original = encoding.encode_mp4(marked, fps=FPS)
    lower = int(len(original) * 8 / 5 * 0.6)
    reencoded = encoding.decode_mp4(encoding.encode_mp4(marked, fps=FPS, bit_rate=lower)).frames
    assert watermark.read(reencoded).key == watermark.key_of(content_id)
    halved = reencoded.reshape(len(reencoded), 128, 2, 128, 2, 3).mean(axis=(2, 4)).astype(np.uint8)
    assert watermark.read(encoding.decode_mp4(encoding.encode_mp4(halved, fps=FPS)).frames).key == (
        watermark.key_of(content_id)
    )
    # No frame number is needed: any 2 s (16 frames here) from anywhere decode alone.
    for start in (0, 7, 13, 24):
        assert watermark.read(reencoded[start : start + 2 * FPS]).key == watermark.key_of(content_id)


def test_watermark_reads_mirrored_and_inverted_copies(clip):
    content_id = uuid.uuid4()
    marked = watermark.embed(clip, content_id)
    inverted = watermark.read(255 - marked)
    assert inverted.key == watermark.key_of(content_id) and inverted.inverted
    mirrored = watermark.read(np.ascontiguousarray(marked[:, :, ::-1]))
    assert mirrored.key == watermark.key_of(content_id) and mirrored.mirrored


def test_unmarked_video_has_no_watermark(clip):
    assert watermark.read(clip).key is None


def test_the_code_corrects_a_tenth_of_the_coded_bits_flipped():
    rng = np.random.default_rng(0)
    message = rng.integers(0, 2, size=watermark.MESSAGE_BITS, dtype=np.uint8)
    coded = watermark.encode_message(message)
    assert len(coded) == watermark.CODED_BITS
    soft = coded.astype(np.float64) * 2 - 1
    flipped = rng.permutation(len(soft))[: len(soft) // 10]
    soft[flipped] *= -1
    assert np.array_equal(watermark.decode_message(soft), message)
    assert not np.array_equal(watermark.decode_message(-soft), message)
