"""Videos with a sound track: AAC next to H.264, in sync, and the picture untouched by it."""

import io

import av
import numpy as np
import pytest

from core.video import AUDIO_SAMPLE_RATE, conform_audio, encode_video
from generation import encoding
from generation.backends.base import Soundtrack

FPS = 24


def moving_frames(seconds: float, *, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    count = round(seconds * FPS)
    height, width = size
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for index in range(count):
        frames[index, :, : (index * 3) % width] = (200, 80, 40)
        frames[index, (index * 2) % height :, :, 2] = 160
    return frames


def tone(
    seconds: float, *, rate: int = AUDIO_SAMPLE_RATE, hz: float = 440.0, channels: int = 2
) -> Soundtrack:
    time = np.arange(round(seconds * rate)) / rate
    wave = (0.4 * np.sin(2 * np.pi * hz * time)).astype(np.float32)
    return Soundtrack(samples=np.repeat(wave[:, None], channels, axis=1), sample_rate=rate)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def streams(data: bytes) -> dict[str, dict]:
    """Per stream type: its codec, start time (s) and, for sound, sample rate and channels."""
    found = {}
    with av.open(io.BytesIO(data)) as container:
        for stream in container.streams:
            context = stream.codec_context
            found[stream.type] = {"codec": context.name, "start": float(stream.start_time * stream.time_base)}
            if stream.type == "audio":
                found[stream.type].update(rate=context.sample_rate, channels=context.layout.nb_channels)
    return found


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_frames(2.0)


@pytest.fixture(scope="module")
def with_sound(clip) -> bytes:
    return encoding.encode_mp4(clip, fps=FPS, metadata={"AIGC": "{}"}, sound=tone(2.0))


def test_a_clip_with_sound_has_an_h264_and_an_aac_stream_starting_together(with_sound):
    found = streams(with_sound)
    assert found["video"]["codec"] == "h264"
    assert found["audio"] == {"codec": "aac", "start": 0.0, "rate": 48000, "channels": 2}
    assert found["video"]["start"] == 0.0
    assert encoding.has_audio_stream(with_sound)
    source = io.BytesIO(with_sound)
    assert encoding.has_audio_stream(source) and source.tell() == 0
    # faststart: the index comes before the media data.
    assert with_sound.index(b"moov") < with_sound.index(b"mdat")


def test_the_decoded_sound_lasts_as_long_as_the_picture_and_keeps_its_pitch(clip, with_sound):
    sound = encoding.decode_audio(with_sound)
    assert sound.sample_rate == 48000 and sound.channels == 2
    assert abs(sound.duration_s - len(clip) / FPS) <= 1 / FPS
    middle = sound.samples[24000:72000, 0]
    assert abs(dominant_hz(middle, 48000) - 440) < 2
    assert 0.35 < np.abs(middle).max() < 0.45
    # The tone starts at time zero: no priming silence before it.
    assert np.abs(sound.samples[:480]).max() > 0.2
    assert encoding.decode_audio(with_sound, max_duration_s=0.5).duration_s == 0.5


def test_the_picture_decodes_the_same_with_or_without_sound(clip, with_sound):
    silent = encoding.encode_mp4(clip, fps=FPS, metadata={"AIGC": "{}"})
    assert not encoding.has_audio_stream(silent)
    assert encoding.decode_audio(silent) is None
    without, along = encoding.decode_mp4(silent), encoding.decode_mp4(with_sound)
    # libx264 is not bit-exact from one run to the next (without sound too), so "the same" is: as
    # many frames, each within that variation of its counterpart.
    assert without.frames.shape == along.frames.shape == clip.shape
    difference = np.abs(without.frames.astype(np.int16) - along.frames)
    assert difference.mean() < 0.5 and difference.max() <= 8
    assert along.fps == without.fps == FPS
    assert along.metadata["AIGC"] == "{}"
    assert np.array_equal(encoding.last_frame(io.BytesIO(with_sound)), along.frames[-1])


def test_a_track_of_another_length_is_fitted_to_the_clip(clip):
    for seconds in (0.7, 3.5):
        sound = encoding.decode_audio(encoding.encode_mp4(clip, fps=FPS, sound=tone(seconds)))
        assert abs(sound.duration_s - len(clip) / FPS) <= 1 / FPS


def test_a_mono_track_at_another_rate_becomes_two_equal_channels_at_48_khz(clip):
    data = encode_video(clip, fps=FPS, audio=(tone(2.0, rate=22050, hz=1000.0, channels=1).samples, 22050))
    sound = encoding.decode_audio(data)
    assert sound.sample_rate == 48000 and sound.channels == 2
    assert np.allclose(sound.samples[:, 0], sound.samples[:, 1], atol=0.01)  # AAC's joint stereo
    assert abs(dominant_hz(sound.samples[24000:72000, 0], 48000) - 1000) < 2


def test_the_writer_cuts_a_longer_track_at_the_last_frame(clip):
    data = encode_video(clip, fps=FPS, audio=tone(5.0))
    assert abs(encoding.decode_audio(data).duration_s - len(clip) / FPS) <= 1 / FPS


def test_a_webm_carries_its_sound_as_opus(clip):
    data = encode_video(clip[:12], fps=FPS, container="webm", audio=tone(0.5))
    assert streams(data)["audio"]["codec"] == "opus"
    assert abs(encoding.decode_audio(data).duration_s - 0.5) <= 1 / FPS


def test_conform_audio_resamples_and_spreads_channels():
    mono = tone(1.0, rate=16000, channels=1).samples
    stereo = conform_audio(mono, 16000)
    assert stereo.shape == (48000, 2) and stereo.dtype == np.float32
    assert np.array_equal(stereo[:, 0], stereo[:, 1])
    surround = np.zeros((100, 6), dtype=np.float32)
    surround[:, 1] = 0.5
    assert np.array_equal(conform_audio(surround, 48000), surround[:, :2])
    assert np.abs(conform_audio(np.full((10, 2), 3.0), 48000)).max() == 1.0
