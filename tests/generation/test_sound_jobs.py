"""Videos with sound through the job path: the track is there, as long as the picture (within a
frame), starts with the audible label, is named in the provenance record, and a copy whose sound
was stripped or replaced is still verified."""

import io

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation import encoding, services, sound, worker
from generation.models import Generation, GenerationStatus, Provenance
from generation.soundtrack import Soundtrack
from social.models import Post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BODY = {"prompt": "waves breaking on a pebble beach", "duration_s": 2, "aspect_ratio": "9:16"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


def made(user, renderer, **body) -> tuple[Generation, Post, bytes]:
    response = client_for(user).post("/api/v1/generations", {**BODY, **body}, format="json")
    assert response.status_code == 202, response.json()
    done = worker.execute_generation(int(response.json()["id"]), renderer=renderer)
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    post = Post.objects.get(pk=done.post_id)
    with post.video.open("rb") as handle:
        return done, post, handle.read()


def remuxed(data: bytes, *, sound_track: Soundtrack | None) -> bytes:
    """The file's video stream copied as it is (no re-encode), with no sound or another one."""
    frames = encoding.decode_mp4(data)
    source = av.open(io.BytesIO(data))
    target_buffer = io.BytesIO()
    target = av.open(target_buffer, mode="w", format="mp4")
    video_in = source.streams.video[0]
    video_out = target.add_stream_from_template(video_in)
    for packet in source.demux(video_in):
        if packet.dts is None:
            continue
        packet.stream = video_out
        target.mux(packet)
    target.close()
    source.close()
    if sound_track is None:
        return target_buffer.getvalue()
    # Replaced sound: the same frames written again with another track (what an editor does).
    return encoding.encode_mp4(frames.frames, fps=round(frames.fps), sound=sound_track)


def verify(user, data: bytes) -> dict:
    return (
        client_for(user)
        .post(
            "/api/v1/provenance/verify",
            {"file": SimpleUploadedFile("copy.mp4", data, "video/mp4")},
            format="multipart",
        )
        .json()
    )


def test_a_video_without_cameos_gets_sound_with_its_picture(user, tiny_renderer):
    done, post, data = made(user, tiny_renderer)
    assert done.model_id.startswith("tiny:ltx2")  # picture and sound in one pass
    video, track = encoding.decode_mp4(data), encoding.decode_audio(data)
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
    assert abs(track.duration_s - len(video.frames) / video.fps) <= 1 / video.fps
    assert np.abs(track.samples).max() > 0.01
    assert sound.find_ai_cue(track)
    assert post.has_audio
    assert client_for(user).get(f"/api/v1/posts/{post.pk}").json()["has_audio"] is True
    record = Provenance.objects.get(post=post).record
    assert record["audio"] is True and record["labels"]["audio"] == "morse-cue:AI"


def test_a_silent_video_has_no_sound_track(user, tiny_renderer):
    done, post, data = made(user, tiny_renderer, audio=False)
    assert encoding.decode_audio(data) is None and not post.has_audio
    assert not done.model_id.startswith("tiny:ltx2")
    assert Provenance.objects.get(post=post).record["labels"]["audio"] is None


def test_a_cameo_video_gets_its_sound_from_the_text_to_audio_model(user, alice_cameo, tiny_renderer):
    done, post, data = made(user, tiny_renderer, cameo_ids=[str(alice_cameo.pk)])
    assert "consisid" in done.model_id and "+" in done.model_id  # picture, then sound
    track = encoding.decode_audio(data)
    assert post.has_audio and sound.find_ai_cue(track)
    assert abs(track.duration_s - BODY["duration_s"]) <= 1 / 8


def test_verify_finds_a_copy_whose_sound_was_stripped_or_replaced(user, tiny_renderer):
    done, post, data = made(user, tiny_renderer)
    silent_copy = remuxed(data, sound_track=None)
    assert encoding.decode_audio(silent_copy) is None
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, (2 * 48000, 2)).astype(np.float32)
    dubbed_copy = remuxed(data, sound_track=Soundtrack(noise, 48000))
    assert not sound.find_ai_cue(encoding.decode_audio(dubbed_copy))
    for copy in (silent_copy, dubbed_copy):
        found = verify(user, copy)
        assert found["generated_here"] is True and found["post_id"] == str(post.pk)
        assert found["content_id"] == str(done.content_id)
