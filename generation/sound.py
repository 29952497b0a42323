"""Sound tracks of generated videos: fitted to the picture, joined in sync, and labelled.

Why each piece exists:

- `fit_to_duration`: a model's track rarely lasts exactly as long as its clip, and the picture
  rules: the track is cut (faded over a few milliseconds at the cut, so it does not end in a click)
  or padded with silence.
- `join_soundtracks`: a stitch or a storyboard joins clips; each clip's sound starts at the sample
  where its picture starts, so the joined sound stays in sync with the joined picture however many
  clips there are (no rounding that adds up), and the cuts are cross-faded so they do not click.
- The sound label: GB 45438-2025 asks generated audio for an explicit label, a voice or a rhythm
  cue. Ours is a rhythm, the Morse code of "AI" (A = short-long, I = short-short) as a 1 kHz tone
  at the very start of the track: it needs no language and no speech model, and a steady tone
  survives AAC and resampling. The track is ducked under it, so the cue is heard over loud content.
- `find_ai_cue`: reads the rhythm back from decoded audio (tests, and checking what is published).
  It follows the level of the cue's tone alone and counts only stretches where that tone dominates
  the sound, so other sound under it, at other pitches or broadband, neither makes nor hides a mark.

Tracks handed to the encoder are at `OUTPUT_SAMPLE_RATE`, stereo; `to_output_format` converts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import fftconvolve

from core.video import conform_audio
from generation.soundtrack import Soundtrack

OUTPUT_SAMPLE_RATE = 48000
OUTPUT_CHANNELS = 2
# A track cut short ends with a fade this long instead of a step (a click).
CUT_FADE_S = 0.005

# The label cue: the Morse code of "AI", a dot one unit long, a dash three, one unit of silence
# between the symbols of a letter and three between letters (11 units, 0.88 s).
CUE_TEXT_MORSE = ".- .."
CUE_FREQUENCY_HZ = 1000.0
CUE_UNIT_S = 0.08
CUE_LEVEL = 0.5  # peak amplitude of the tone, -6 dBFS
CUE_RAMP_S = 0.005  # each tone's rise and fall (a tone switched on in one sample clicks)
# The track under the cue is played at a quarter of its level (-12 dB), from the start until a
# letter gap after the last tone, then brought back over `CUE_DUCK_RELEASE_S`.
CUE_DUCK_GAIN = 0.25
CUE_TAIL_UNITS = 3
CUE_DUCK_RELEASE_S = 0.05

# Reading the cue back: the tone's level over a 20 ms window every millisecond. A mark is where that
# level is at least half the loudest in the cue's time and above `CUE_MIN_LEVEL`, and where the tone
# carries at least `CUE_MIN_TONALITY` of the sound's power (broadband noise never does). Durations
# may be `CUE_TOLERANCE` off (40%); the first tone may start up to `CUE_MAX_OFFSET_S` late.
CUE_WINDOW_S = 0.02
CUE_STEP_S = 0.001
CUE_MIN_LEVEL = 0.05
CUE_MIN_TONALITY = 0.3
CUE_MIN_RUN_S = 0.02
CUE_TOLERANCE = 0.4
CUE_MAX_OFFSET_S = 0.25


def _cue_elements(morse: str = CUE_TEXT_MORSE) -> list[tuple[bool, int]]:
    """The rhythm as (tone on?, length in units), e.g. ".-" -> on 1, off 1, on 3."""
    elements: list[tuple[bool, int]] = []
    for letter in morse.split():
        if elements:
            elements.append((False, 3))
        for index, symbol in enumerate(letter):
            if index:
                elements.append((False, 1))
            elements.append((True, 1 if symbol == "." else 3))
    return elements


CUE_UNITS = sum(units for _, units in _cue_elements())
CUE_DURATION_S = CUE_UNITS * CUE_UNIT_S
# How much of the start of a track `find_ai_cue` reads.
CUE_SEARCH_S = CUE_MAX_OFFSET_S + (CUE_UNITS + CUE_TAIL_UNITS) * CUE_UNIT_S * (1 + CUE_TOLERANCE)


def to_output_format(sound: Soundtrack) -> Soundtrack:
    """The track at `OUTPUT_SAMPLE_RATE`, stereo (a mono track on both channels)."""
    if sound.sample_rate == OUTPUT_SAMPLE_RATE and sound.channels == OUTPUT_CHANNELS:
        return sound
    samples = conform_audio(
        sound.samples, sound.sample_rate, rate=OUTPUT_SAMPLE_RATE, channels=OUTPUT_CHANNELS
    )
    return Soundtrack(samples=samples, sample_rate=OUTPUT_SAMPLE_RATE)


def silence(
    duration_s: float, sample_rate: int = OUTPUT_SAMPLE_RATE, channels: int = OUTPUT_CHANNELS
) -> Soundtrack:
    count = max(0, round(duration_s * sample_rate))
    return Soundtrack(samples=np.zeros((count, channels), dtype=np.float32), sample_rate=sample_rate)


def fit_to_duration(sound: Soundtrack, duration_s: float) -> Soundtrack:
    """The track at exactly round(duration_s * rate) samples: cut (with a short fade at the cut) or
    padded with silence."""
    count = max(0, round(duration_s * sound.sample_rate))
    return Soundtrack(samples=_fit(sound.samples, count, sound.sample_rate), sample_rate=sound.sample_rate)


def _fit(samples: np.ndarray, count: int, sample_rate: int, *, fade_cut: bool = True) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) == count:
        return samples
    if len(samples) > count:
        fitted = samples[:count].copy()
        if fade_cut:
            fade = min(count, round(CUT_FADE_S * sample_rate))
            if fade:
                fitted[count - fade :] *= _fall(fade)[:, None]
        return fitted
    padding = np.zeros((count - len(samples), samples.shape[1]), dtype=np.float32)
    return np.concatenate([samples, padding])


def _fall(length: int) -> np.ndarray:
    """A raised-cosine fade from 1 to (just above) 0 over `length` samples."""
    return (0.5 + 0.5 * np.cos(np.pi * (np.arange(length) + 1) / (length + 1))).astype(np.float32)


def ai_cue(sample_rate: int = OUTPUT_SAMPLE_RATE, channels: int = OUTPUT_CHANNELS) -> np.ndarray:
    """The cue alone, (samples, channels) float32, `CUE_DURATION_S` long."""
    return morse_tones(CUE_TEXT_MORSE, sample_rate, channels)


def morse_tones(morse: str, sample_rate: int, channels: int) -> np.ndarray:
    """A Morse rhythm ("." and "-", letters apart by a space) played with the cue's tone and timing,
    each tone rising and falling over `CUE_RAMP_S`: the cue, or (for checking the reader) another rhythm."""
    elements = _cue_elements(morse)
    gate = np.zeros(round(sum(units for _, units in elements) * CUE_UNIT_S * sample_rate), dtype=np.float32)
    ramp = round(CUE_RAMP_S * sample_rate)
    position = 0
    for tone_on, units in elements:
        start = round(position * CUE_UNIT_S * sample_rate)
        position += units
        end = round(position * CUE_UNIT_S * sample_rate)
        if tone_on:
            gate[start:end] = 1.0
            gate[start : start + ramp] = _fall(ramp)[::-1]
            gate[end - ramp : end] = _fall(ramp)
    time = np.arange(len(gate)) / sample_rate
    tone = (CUE_LEVEL * np.sin(2 * np.pi * CUE_FREQUENCY_HZ * time)).astype(np.float32) * gate
    return np.repeat(tone[:, None], channels, axis=1)


def stamp_audio_label(sound: Soundtrack) -> Soundtrack:
    """The track with the cue at its start, mixed over the track ducked by `CUE_DUCK_GAIN`; its length
    unchanged. The video's length rules: a track shorter than the cue keeps only the part of the cue
    that fits (a clip that short has no room for the whole label)."""
    samples = np.asarray(sound.samples, dtype=np.float32)
    count, rate = len(samples), sound.sample_rate
    cue = ai_cue(rate, sound.channels)[:count]
    ducked = samples * _duck_envelope(count, rate)[:, None]
    ducked[: len(cue)] += cue
    return Soundtrack(samples=np.clip(ducked, -1.0, 1.0), sample_rate=rate)


def _duck_envelope(count: int, sample_rate: int) -> np.ndarray:
    """The track's gain under the cue: `CUE_DUCK_GAIN` until a letter gap after the cue, then back
    to 1 over `CUE_DUCK_RELEASE_S`."""
    envelope = np.ones(count, dtype=np.float32)
    held = min(count, round((CUE_UNITS + CUE_TAIL_UNITS) * CUE_UNIT_S * sample_rate))
    envelope[:held] = CUE_DUCK_GAIN
    release = _fall(round(CUE_DUCK_RELEASE_S * sample_rate))[: max(0, count - held)]
    envelope[held : held + len(release)] = 1.0 - (1.0 - CUE_DUCK_GAIN) * release
    return envelope


def read_cue_marks(sound: Soundtrack) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch, in the first `CUE_SEARCH_S` of the track, where the
    cue's tone sounds (see the `CUE_WINDOW_S` .. `CUE_MIN_RUN_S` settings)."""
    rate = sound.sample_rate
    mono = np.asarray(sound.samples[: round(CUE_SEARCH_S * rate)], dtype=np.float64).mean(axis=1)
    window = np.hanning(max(3, round(CUE_WINDOW_S * rate)))
    window /= window.sum()
    if len(mono) < len(window):
        return []
    # The tone's amplitude: the sound shifted down by the tone's frequency, then low-passed by the
    # window (a sliding single-frequency Fourier transform); a sine of amplitude A reads A.
    carrier = np.exp(-2j * np.pi * CUE_FREQUENCY_HZ * np.arange(len(mono)) / rate)
    tone = 2 * np.abs(fftconvolve(mono * carrier, window, mode="same"))
    power = np.maximum(fftconvolve(mono**2, window, mode="same"), 1e-12)
    step = max(1, round(CUE_STEP_S * rate))
    tone, power = tone[::step], power[::step]
    # The loudest tone is looked for where the cue can be, while the track is still ducked.
    cue_time = round((CUE_MAX_OFFSET_S + CUE_DURATION_S) * rate / step)
    threshold = max(CUE_MIN_LEVEL, 0.5 * float(tone[:cue_time].max()))
    sounding = (tone > threshold) & (tone**2 / 2 / power > CUE_MIN_TONALITY)
    shortest = max(1, round(CUE_MIN_RUN_S * rate / step))
    # Flickers at the edges of a mark: close short gaps, then drop short marks.
    runs = _runs(sounding)
    for (_, end), (start, _) in zip(runs, runs[1:], strict=False):
        if start - end < shortest:
            sounding[end:start] = True
    return [
        (start * step / rate, end * step / rate) for start, end in _runs(sounding) if end - start >= shortest
    ]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the runs of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def find_ai_cue(sound: Soundtrack) -> bool:
    """Whether the track starts with the cue's rhythm: four tones, short-long then short-short, with
    the gaps between them, each within `CUE_TOLERANCE` of its length in units of the rhythm's own
    unit (itself within `CUE_TOLERANCE` of `CUE_UNIT_S`), with at least a letter gap without the
    tone before and after. Another rhythm ("IA", "N", "UI", a steady tone) or no tone at all is
    not the cue."""
    marks = read_cue_marks(sound)
    return any(
        _is_cue(marks[:index], marks[index:])
        for index, (start, _) in enumerate(marks)
        if start <= CUE_MAX_OFFSET_S
    )


def _is_cue(before: list[tuple[float, float]], marks: list[tuple[float, float]]) -> bool:
    expected = _cue_elements()
    tones = sum(1 for tone_on, _ in expected if tone_on)
    if len(marks) < tones:
        return False
    unit = (marks[tones - 1][1] - marks[0][0]) / CUE_UNITS
    if abs(unit / CUE_UNIT_S - 1) > CUE_TOLERANCE:
        return False
    lengths = np.diff([edge for mark in marks[:tones] for edge in mark])
    if any(
        abs(length / (units * unit) - 1) > CUE_TOLERANCE
        for (_, units), length in zip(expected, lengths, strict=True)
    ):
        return False
    # A letter gap apart from any other tone, or "AI" would be read inside "UI" or "AIS".
    letter_gap = 3 * unit * (1 - CUE_TOLERANCE)
    if before and marks[0][0] - before[-1][1] < letter_gap:
        return False
    return len(marks) == tones or marks[tones][0] - marks[tones - 1][1] >= letter_gap


def join_soundtracks(
    tracks: Sequence[Soundtrack | None], durations_s: Sequence[float], *, crossfade_s: float = 0.04
) -> Soundtrack:
    """The clips' tracks one after another, at `OUTPUT_SAMPLE_RATE`, stereo, exactly sum(durations_s)
    long: each track fitted to its clip's length and starting at the sample where its clip starts (a
    clip without sound, None, is silent). At each cut the two tracks are cross-faded with equal power
    over `crossfade_s` centred on the cut, each extended past its end by its own samples mirrored, so
    nothing moves in time."""
    if len(tracks) != len(durations_s):
        raise ValueError("one duration per track")
    rate = OUTPUT_SAMPLE_RATE
    starts = np.concatenate([[0.0], np.cumsum(durations_s, dtype=np.float64)])
    bounds = [round(float(start) * rate) for start in starts]
    parts = []
    for index, track in enumerate(tracks):
        count = bounds[index + 1] - bounds[index]
        if track is None:
            parts.append(np.zeros((count, OUTPUT_CHANNELS), dtype=np.float32))
            continue
        # Inner cuts are cross-faded below; only the end of the whole track gets the cut fade.
        last = index == len(tracks) - 1
        parts.append(_fit(to_output_format(track).samples, count, rate, fade_cut=last))
    joined = np.concatenate(parts) if parts else np.zeros((0, OUTPUT_CHANNELS), dtype=np.float32)
    half = round(crossfade_s / 2 * rate)
    for index in range(1, len(parts)):
        before, after = parts[index - 1], parts[index]
        # A clip shorter than two half-fades shares itself between the fades at its ends.
        width = min(half, len(before) // 2, len(after) // 2)
        if width:
            cut = bounds[index]
            joined[cut - width : cut + width] = _crossfade(before, after, width)
    return Soundtrack(samples=joined, sample_rate=rate)


def _crossfade(before: np.ndarray, after: np.ndarray, width: int) -> np.ndarray:
    """2 * width samples centred on the cut: `before` fading out (continued past its end by its last
    samples mirrored) over `after` fading in (preceded by its first samples mirrored)."""
    outgoing = np.concatenate([before[-width:], before[::-1][:width]])
    incoming = np.concatenate([after[:width][::-1], after[:width]])
    angle = ((np.pi / 2) * (np.arange(2 * width) + 0.5) / (2 * width))[:, None]
    return (outgoing * np.cos(angle) + incoming * np.sin(angle)).astype(np.float32)
