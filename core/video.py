"""Writing frames as a video file: the one H.264 writer the apps share (PyAV).

A video may carry a sound track: AAC (Opus in WebM) at 48 kHz stereo, the rate and layout every
player takes, whatever rate and channels the track came in. Its samples are encoded alongside the
frames they play with, so the muxer interleaves the two streams as it goes, and both start at zero:
the encoder's priming samples are hidden by the edit list the MP4 muxer writes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np

AUDIO_SAMPLE_RATE = 48000
AUDIO_CHANNELS = 2
AUDIO_BIT_RATE = 128_000
# Per container: the audio encoder, the sample format it takes and the samples in each of its frames.
AUDIO_CODECS = {"mp4": ("aac", "fltp", 1024), "webm": ("libopus", "flt", 960)}


class SoundLike(Protocol):
    samples: np.ndarray
    sample_rate: int


# (samples (n, channels) float in [-1, 1], sample rate), or anything with those two attributes.
Audio = tuple[np.ndarray, int] | SoundLike


def write_video(
    target: str | Path | io.BytesIO,
    frames: Iterable[np.ndarray],
    *,
    fps: int,
    container: str = "mp4",
    codec_options: dict[str, str] | None = None,
    bit_rate: int | None = None,
    metadata: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    audio: Audio | None = None,
) -> None:
    """Encodes RGB uint8 frames (all one size) as H.264 (or VP9 for WebM), yuv420p.

    `metadata` become container tags; `container_options` go to the muxer (e.g. movflags).
    `audio` becomes the file's sound track, cut at the end of the last frame (a shorter track ends
    before the picture does).
    """
    codec = "libvpx-vp9" if container == "webm" else "libx264"
    target_arg = str(target) if isinstance(target, (str, Path)) else target
    track = None if audio is None else conform_audio(*_samples_and_rate(audio))
    with av.open(target_arg, mode="w", format=container, options=container_options or {}) as output:
        for key, value in (metadata or {}).items():
            output.metadata[key] = value
        stream = None
        sound = None
        for index, array in enumerate(frames):
            if stream is None:
                stream = output.add_stream(codec, rate=Fraction(fps, 1))
                stream.height, stream.width = array.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                if bit_rate:
                    stream.bit_rate = bit_rate
                stream.options = dict(codec_options or {})
                if track is not None:
                    # Every stream is added before the first packet is muxed (that writes the header).
                    sound = _SoundEncoder(output, container, track)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array, dtype=np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
            if sound is not None:
                sound.encode_until(_sample_at(index + 1, fps))
        if stream is None:
            raise ValueError("no frames to encode")
        if sound is not None:
            sound.finish(_sample_at(index + 1, fps))
        for packet in stream.encode():
            output.mux(packet)


def encode_video(frames: Iterable[np.ndarray], *, fps: int, container: str = "mp4", **options) -> bytes:
    """`write_video` into memory (muxers that rewrite the file, like MP4 faststart, need a path)."""
    buffer = io.BytesIO()
    write_video(buffer, frames, fps=fps, container=container, **options)
    return buffer.getvalue()


def conform_audio(
    samples: np.ndarray, sample_rate: int, *, rate: int = AUDIO_SAMPLE_RATE, channels: int = AUDIO_CHANNELS
) -> np.ndarray:
    """The samples as (n, channels) float32 in [-1, 1] at `rate`: resampled polyphase, a mono track
    copied to every channel, a track with more channels cut to the first ones (front left and right
    in the usual channel order)."""
    track = np.asarray(samples, dtype=np.float32)
    if track.ndim == 1:
        track = track[:, None]
    if track.ndim != 2 or not track.shape[1]:
        raise ValueError("audio samples must be shaped (samples, channels)")
    if sample_rate != rate:
        # Imported here: scipy.signal takes about a second to import and most callers write no sound.
        from scipy.signal import resample_poly

        common = math.gcd(int(sample_rate), rate)
        track = resample_poly(track, rate // common, int(sample_rate) // common, axis=0).astype(np.float32)
    if track.shape[1] == 1:
        track = np.repeat(track, channels, axis=1)
    elif track.shape[1] > channels:
        track = track[:, :channels]
    elif track.shape[1] < channels:
        raise ValueError(f"cannot spread {track.shape[1]} channels over {channels}")
    return np.ascontiguousarray(np.clip(track, -1.0, 1.0))


def _samples_and_rate(audio: Audio) -> tuple[np.ndarray, int]:
    if isinstance(audio, tuple):
        samples, sample_rate = audio
        return samples, int(sample_rate)
    return audio.samples, int(audio.sample_rate)


def _sample_at(frame_index: int, fps: int) -> int:
    """The audio sample at which video frame `frame_index` starts."""
    return round(frame_index * AUDIO_SAMPLE_RATE / fps)


class _SoundEncoder:
    """The sound track's stream: encodes the track frame by frame as the picture advances."""

    def __init__(self, output, container: str, track: np.ndarray):
        codec, self.sample_format, self.frame_samples = AUDIO_CODECS[container]
        self.output = output
        self.track = track
        self.stream = output.add_stream(codec, rate=AUDIO_SAMPLE_RATE, layout="stereo")
        self.stream.format = self.sample_format
        self.stream.bit_rate = AUDIO_BIT_RATE
        self.position = 0

    def encode_until(self, end: int) -> None:
        """Encodes whole encoder frames of the track up to sample `end`."""
        end = min(end, len(self.track))
        while self.position + self.frame_samples <= end:
            self._encode(self.track[self.position : self.position + self.frame_samples])

    def finish(self, end: int) -> None:
        """Encodes the rest of the track up to sample `end` (the last frame may be short) and drains
        the encoder."""
        end = min(end, len(self.track))
        self.encode_until(end)
        if self.position < end:
            self._encode(self.track[self.position : end])
        for packet in self.stream.encode():
            self.output.mux(packet)

    def _encode(self, chunk: np.ndarray) -> None:
        planar = self.sample_format.endswith("p")
        array = chunk.T if planar else chunk.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(array), format=self.sample_format, layout="stereo"
        )
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
        frame.pts = self.position
        self.position += len(chunk)
        for packet in self.stream.encode(frame):
            self.output.mux(packet)
