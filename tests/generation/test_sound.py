"""Sound tracks: fitted to their clip, joined in sync, and labelled with the "AI" rhythm cue."""

import numpy as np
import pytest

from generation import encoding, sound
from generation.backends.base import Soundtrack

RATE = sound.OUTPUT_SAMPLE_RATE
FPS = 8


def music(seconds: float, *, rate: int = RATE, level: float = 1.0) -> Soundtrack:
    """Chords at pitches other than the cue's, swelling twice a second, one channel a little late
    (clipped to full scale when `level` takes them past it)."""
    time = np.arange(round(seconds * rate)) / rate
    partials = [(0.3, 220), (0.25, 330), (0.2, 440), (0.15, 660), (0.1, 1760)]
    wave = sum(amplitude * np.sin(2 * np.pi * hz * time + hz) for amplitude, hz in partials)
    wave *= level * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * time) ** 2)
    samples = np.clip(np.stack([wave, np.roll(wave, 100)], axis=1), -1, 1)
    return Soundtrack(samples=samples.astype(np.float32), sample_rate=rate)


def noise(seconds: float, *, sigma: float = 0.3, seed: int = 0) -> Soundtrack:
    samples = np.random.default_rng(seed).normal(0, sigma, (round(seconds * RATE), 2))
    return Soundtrack(samples=np.clip(samples, -1, 1).astype(np.float32), sample_rate=RATE)


def with_rhythm(track: Soundtrack, morse: str) -> Soundtrack:
    """`track` with another rhythm in the cue's tone over its start, as `stamp_audio_label` mixes it."""
    tones = sound.morse_tones(morse, track.sample_rate, track.channels)
    samples = track.samples * sound.CUE_DUCK_GAIN
    samples[: len(tones)] += tones[: len(samples)]
    return Soundtrack(samples=samples.astype(np.float32), sample_rate=track.sample_rate)


def steady_tone(seconds: float) -> Soundtrack:
    time = np.arange(round(seconds * RATE)) / RATE
    wave = sound.CUE_LEVEL * np.sin(2 * np.pi * sound.CUE_FREQUENCY_HZ * time)
    return Soundtrack(samples=np.repeat(wave[:, None], 2, axis=1).astype(np.float32), sample_rate=RATE)


def through_aac(track: Soundtrack) -> Soundtrack:
    """The track as it comes back from a published video."""
    frames = np.zeros((round(track.duration_s * FPS), 32, 32, 3), dtype=np.uint8)
    decoded = encoding.decode_audio(encoding.encode_mp4(frames, fps=FPS, sound=track))
    assert decoded.sample_rate == 48000
    return decoded


@pytest.mark.parametrize(("seconds", "rate"), [(2.0, 48000), (1 / 3, 48000), (2.0001, 44100), (0.0, 16000)])
def test_fit_to_duration_gives_exactly_the_clips_samples(seconds, rate):
    time = np.arange(rate) / rate
    source = Soundtrack(
        np.repeat(np.sin(2 * np.pi * 300 * time)[:, None], 2, axis=1).astype(np.float32), rate
    )
    fitted = sound.fit_to_duration(source, seconds)
    count = round(seconds * rate)
    assert fitted.samples.shape == (count, 2) and fitted.sample_rate == rate
    if count > rate:
        assert np.array_equal(fitted.samples[:rate], source.samples)
        assert not fitted.samples[rate:].any()
    elif count:
        kept = count - round(sound.CUT_FADE_S * rate)
        assert np.array_equal(fitted.samples[:kept], source.samples[:kept])
        # The cut is faded, not a step.
        assert np.abs(fitted.samples[-1]).max() < 0.01


def test_silence_has_the_asked_length_and_layout():
    quiet = sound.silence(1.5)
    assert quiet.samples.shape == (72000, 2) and quiet.sample_rate == RATE and not quiet.samples.any()
    assert sound.silence(0.5, sample_rate=16000, channels=1).samples.shape == (8000, 1)


def test_the_cue_is_the_morse_rhythm_of_ai_well_under_a_second_and_a_half():
    cue = sound.ai_cue(RATE, 2)
    assert len(cue) == round(sound.CUE_DURATION_S * RATE) and sound.CUE_DURATION_S < 1.2
    assert np.array_equal(cue[:, 0], cue[:, 1])
    unit = round(sound.CUE_UNIT_S * RATE)
    # on 1, off 1, on 3, off 3, on 1, off 1, on 1 (in units), read at each unit's middle
    sounding = [
        np.abs(cue[i * unit + unit // 4 : i * unit + 3 * unit // 4, 0]).max() > 0.4 for i in range(11)
    ]
    assert sounding == [True, False, True, True, True, False, False, False, True, False, True]


def test_stamping_keeps_the_length_and_ducks_the_track_under_the_cue():
    track = music(3.0)
    stamped = sound.stamp_audio_label(track)
    assert stamped.samples.shape == track.samples.shape and stamped.sample_rate == RATE
    gap = slice(round(0.09 * RATE), round(0.15 * RATE))  # the first silence of the rhythm
    assert np.allclose(stamped.samples[gap], track.samples[gap] * sound.CUE_DUCK_GAIN, atol=1e-6)
    later = slice(round(1.5 * RATE), None)
    assert np.array_equal(stamped.samples[later], track.samples[later])
    short = sound.stamp_audio_label(music(0.5))
    assert len(short.samples) == round(0.5 * RATE)
    assert np.abs(stamped.samples).max() <= 1.0


@pytest.mark.parametrize(
    "under",
    [
        pytest.param(lambda: music(3.0), id="music"),
        pytest.param(lambda: noise(3.0, sigma=0.6), id="loud-noise"),
        pytest.param(lambda: music(3.0, rate=44100, level=3.0), id="clipped-music-at-44.1k"),
        pytest.param(lambda: sound.silence(3.0), id="silence"),
    ],
)
def test_the_cue_is_found_after_an_aac_round_trip(under):
    stamped = sound.stamp_audio_label(under())
    assert sound.find_ai_cue(stamped)
    decoded = through_aac(stamped)
    assert sound.find_ai_cue(decoded), sound.read_cue_marks(decoded)


@pytest.mark.parametrize(
    "track",
    [
        pytest.param(lambda: music(3.0), id="unlabelled-music"),
        pytest.param(lambda: noise(3.0, sigma=0.6), id="white-noise"),
        pytest.param(lambda: sound.silence(3.0), id="silence"),
        pytest.param(lambda: with_rhythm(music(3.0), ".. .-"), id="IA"),
        pytest.param(lambda: with_rhythm(music(3.0), "-."), id="N"),
        pytest.param(lambda: with_rhythm(noise(3.0), ".-"), id="A-alone"),
        pytest.param(lambda: with_rhythm(music(3.0), ".- ..."), id="AS"),
        pytest.param(lambda: with_rhythm(music(3.0), "..- .."), id="UI"),
        pytest.param(lambda: steady_tone(3.0), id="steady-tone"),
    ],
)
def test_no_cue_is_found_where_there_is_none(track):
    made = track()
    assert not sound.find_ai_cue(made)
    assert not sound.find_ai_cue(through_aac(made))


def test_the_cue_cut_short_by_a_short_clip_is_not_taken_for_the_whole():
    assert not sound.find_ai_cue(sound.stamp_audio_label(music(0.5)))


def test_joined_sound_has_the_joined_length_and_each_clip_starts_on_its_cut():
    durations = [13 / 8, 1 / 3, 2.0, 7 / 24, 1.25]
    clicks = []
    tracks = []
    for index, seconds in enumerate(durations):
        rate = 44100 if index % 2 else RATE
        samples = np.zeros((round(seconds * rate), 1 + index % 2), dtype=np.float32)
        samples[0] = 1.0  # a click at the clip's very start
        tracks.append(Soundtrack(samples, rate))
        clicks.append(sum(durations[:index]))
    joined = sound.join_soundtracks(tracks, durations)
    assert joined.sample_rate == RATE and joined.channels == 2
    assert len(joined.samples) == round(sum(durations) * RATE)
    for start in clicks[1:]:
        window = slice(round((start - 0.05) * RATE), round((start + 0.05) * RATE))
        heard = np.argmax(np.abs(joined.samples[window, 0])) + window.start
        assert abs(heard / RATE - start) < 0.003


def test_a_clip_without_sound_is_silent_in_the_join_and_tracks_are_fitted_to_their_clips():
    joined = sound.join_soundtracks([music(2.5), None, noise(0.5)], [2.0, 1.0, 1.0], crossfade_s=0.04)
    assert len(joined.samples) == 4 * RATE
    assert not joined.samples[round(2.1 * RATE) : round(2.9 * RATE)].any()
    assert not joined.samples[round(3.6 * RATE) :].any()  # the short track is padded with silence
    assert np.array_equal(joined.samples[:RATE], music(2.5).samples[:RATE])


def test_the_cross_fade_takes_the_step_out_of_a_cut():
    high = Soundtrack(np.full((RATE, 2), 0.5, dtype=np.float32), RATE)
    low = Soundtrack(np.full((RATE, 2), -0.5, dtype=np.float32), RATE)
    hard = sound.join_soundtracks([high, low], [1.0, 1.0], crossfade_s=0)
    soft = sound.join_soundtracks([high, low], [1.0, 1.0])
    assert np.abs(np.diff(hard.samples[:, 0])).max() == pytest.approx(1.0)
    assert np.abs(np.diff(soft.samples[:, 0])).max() < 0.002
    # Untouched outside the fade, which is centred on the cut.
    assert np.array_equal(soft.samples[: RATE - 960], hard.samples[: RATE - 960])
    assert np.array_equal(soft.samples[RATE + 960 :], hard.samples[RATE + 960 :])
    assert soft.samples[RATE - 1, 0] > 0 > soft.samples[RATE, 0]
