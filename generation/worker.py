"""What a GPU worker does with one job, from claim to draft post (a stitch, on a CPU worker, joins
its sources where others render; a storyboard's join task joins its shots, each rendered by
`execute_shot` on a GPU worker).

claim -> consent recheck -> render picture and sound (progress + heartbeat per step; a cancelled
or blocked job stops at the next step) -> likeness scan -> duration, visible label, watermark;
the sound fitted to the clip with the audio label cue at its start -> H.264 + AAC MP4 with the
AIGC tag -> frame fingerprints -> consent recheck, store, provenance, fingerprints, draft post,
notifications (one transaction).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from generation import encoding, fingerprints, joining, labels, services, sound, storyboards, watermark
from generation.backends import (
    BackendError,
    IdentityInput,
    ReferenceImage,
    RenderCancelled,
    RenderRequest,
    cameo_conditioning,
    get_renderer,
)
from generation.models import Generation, GenerationMode, GenerationShot, GenerationStatus
from generation.soundtrack import Soundtrack

logger = logging.getLogger(__name__)

# Progress up to this share is the denoising loop; the rest is encoding and storing.
RENDER_SHARE = 0.9
LIKENESS_SCAN_FRAMES = 4


def frame_count(duration_s: int) -> int:
    """Frames to render: (4k + 1) as the CogVideoX-family VAE compresses time by 4."""
    wanted = min(settings.GENERATION_MAX_FRAMES, duration_s * settings.GENERATION_FPS + 1)
    return max(5, (wanted - 1) // 4 * 4 + 1)


def identity_input(cameo, face: Image.Image) -> IdentityInput:
    """A person cameo for the identity-preserving model: its template and aligned face crop."""
    return IdentityInput(
        cameo_id=str(cameo.pk),
        template_version=int(cameo.template_version),
        embedding=np.asarray(cameo.template, dtype=np.float32),
        encoder=cameo.encoder,
        face_crop=face,
    )


def cameo_conditioning_inputs(likeness_ids) -> tuple[IdentityInput | None, tuple[ReferenceImage, ...]]:
    """One reference image per cameo shown (a job's named, then inherited; a shot's), and the
    identity of its first person; the renderer's routing (generation.backends.route) decides which
    is used."""
    if not likeness_ids:
        return None, ()
    from cameo.models import Cameo, CameoKind
    from cameo.references import NoPicture, conditioning_image

    cameos = Cameo.objects.in_bulk(list(likeness_ids))
    references, identity = [], None
    for cameo_id in likeness_ids:
        cameo = cameos.get(int(cameo_id))
        if cameo is None:
            raise BackendError(f"Cameo {cameo_id} of this job no longer exists.")
        try:
            image = conditioning_image(cameo)
        except NoPicture as exc:
            raise BackendError(str(exc)) from exc
        reference = ReferenceImage(cameo_id=str(cameo.pk), kind=cameo.kind, image=image)
        if identity is None and cameo.kind == CameoKind.PERSON:
            identity = identity_input(cameo, reference.image)
        references.append(reference)
    return identity, tuple(references)


def last_frame_of(post) -> Image.Image:
    with post.video.open("rb") as handle:
        return Image.fromarray(encoding.last_frame(handle))


def render_request(job: Generation, shot: GenerationShot | None = None) -> RenderRequest:
    """What the model renders for a job, or for one shot of a storyboard (its prompt, seed,
    length and cameos; the storyboard's size and sound)."""
    width, height = settings.GENERATION_SIZES[job.aspect_ratio]
    source = shot or job
    identity, references = cameo_conditioning_inputs(source.likeness_ids)
    init_image = None
    if job.mode == "continue" and job.remix_of_id is not None:
        init_image = last_frame_of(job.remix_of)
    return RenderRequest(
        prompt=source.composed_prompt or source.prompt,
        seed=source.seed,
        width=width,
        height=height,
        num_frames=frame_count(source.duration_s),
        num_inference_steps=settings.GENERATION_STEPS,
        guidance_scale=settings.GENERATION_GUIDANCE,
        identity=identity,
        references=references,
        init_image=init_image,
        audio=job.audio,
        duration_s=float(source.duration_s),
    )


# Modes whose frames come joined at GENERATION_FPS and their full length, not as rendered.
JOINED_MODES = (GenerationMode.STITCH, GenerationMode.STORYBOARD)


def finish_frames(frames: np.ndarray, job: Generation) -> np.ndarray:
    """The visible label and the watermark on the clip, a rendered one first held to the job's
    duration (joined frames already have theirs). Joined frames are the worker's own, made for
    this job: they are marked in place, as a copy of every frame cost more than the marks."""
    fps = settings.GENERATION_FPS
    if job.mode in JOINED_MODES:
        clip = frames
    else:
        # Picking frames to fill the duration makes a new array.
        clip = encoding.stretch_to_duration(frames, duration_s=job.duration_s, fps=fps)
    clip = labels.stamp_visible_label(
        clip, fps=fps, platform_mark=settings.GENERATION_PLATFORM_MARK, in_place=True
    )
    return watermark.embed(clip, job.content_id, in_place=True)


def finish_sound(track: Soundtrack | None, duration_s: float) -> Soundtrack | None:
    """The sound held to the clip's length, with the audio label (the Morse rhythm of "AI") at its
    start."""
    if track is None:
        return None
    return sound.stamp_audio_label(sound.fit_to_duration(track, duration_s))


# What a stitch's provenance names as its model: none rendered it.
STITCH_MODEL_ID = "stitch"


def decoded_clip(file, *, with_sound: bool) -> tuple[joining.Clip, Soundtrack | None]:
    """A stored video's frames (and its sound, when asked for and it has any)."""
    with file.open("rb") as handle:
        video = encoding.decode_mp4(handle)
        track = None
        if with_sound:
            handle.seek(0)
            track = encoding.decode_audio(handle)
    return joining.Clip(video.frames, video.fps or settings.GENERATION_FPS), track


def joined(
    clips: list[joining.Clip], tracks: list[Soundtrack | None], job: Generation
) -> tuple[np.ndarray, Soundtrack | None]:
    """Clips one after another at the job's size and GENERATION_FPS (generation.joining), and their
    sounds joined in step with them (silence for a clip without; none when no clip has sound)."""
    fps = settings.GENERATION_FPS
    width, height = settings.GENERATION_SIZES[job.aspect_ratio]
    frames = joining.join(clips, width=width, height=height, fps=fps)
    track = None
    if any(item is not None for item in tracks):
        lengths = [joining.frames_at(clip, fps) / fps for clip in clips]
        track = sound.join_soundtracks(tracks, lengths)
    return frames, track


def joined_sources(job: Generation, attempt: int) -> tuple[np.ndarray, Soundtrack | None]:
    """A stitch's posts decoded and joined, picture and sound. Each source is checked again as the
    request checked it (a post removed, made private to the requester or closed to remixing since
    fails the job with that code)."""
    from core.errors import ApiError

    # A post that comes more than once is checked and decoded once.
    decoded: dict[int, tuple[joining.Clip, Soundtrack | None]] = {}
    distinct = list(dict.fromkeys(job.source_ids))
    for index, post_id in enumerate(distinct):
        try:
            post = services.check_stitch_source(user=job.user, post_id=post_id)
        except ApiError as refusal:
            raise BackendError(
                f"Post {post_id} can no longer be stitched: {refusal}", code=refusal.code
            ) from refusal
        decoded[post_id] = decoded_clip(post.video, with_sound=job.audio and post.has_audio)
        beat(job.pk, attempt, RENDER_SHARE * (index + 1) / len(distinct))
    clips, tracks = zip(*(decoded[post_id] for post_id in job.source_ids), strict=True)
    return joined(list(clips), list(tracks), job)


def joined_shots(job: Generation, attempt: int) -> tuple[np.ndarray, Soundtrack | None, str, dict]:
    """A storyboard's rendered shots decoded and joined, picture and sound, with the models that
    rendered them and how each cameo conditioned its shot."""
    shots = list(job.shots.order_by("index"))
    clips, tracks = [], []
    for shot in shots:
        clip, track = decoded_clip(default_storage.open(shot.output_name), with_sound=job.audio)
        clips.append(clip)
        tracks.append(track)
        beat(job.pk, attempt, _finishing(0.0))
    frames, track = joined(clips, tracks, job)
    model_id = "+".join(dict.fromkeys(shot.model_id for shot in shots))
    conditioning = {}
    for shot in shots:
        for cameo_id, how in shot.conditioning.items():
            conditioning.setdefault(cameo_id, how)
    return frames, track, model_id, conditioning


def job_cameo_ids(job: Generation) -> list[int]:
    """The cameos the job shows with consent, named and inherited (cameo.lineage): the one place
    the likeness scan reads them from."""
    return list(job.likeness_ids)


def unconsented_faces(frames: np.ndarray, job: Generation) -> list:
    """Faces in the output the job has no consent for: cameos that are not part of it, and
    protected likenesses none of its cameos is verified as."""
    from cameo.likeness import find_unconsented_likenesses

    picks = np.linspace(0, len(frames) - 1, num=min(LIKENESS_SCAN_FRAMES, len(frames))).astype(int)
    return find_unconsented_likenesses([frames[index] for index in picks], cameo_ids=job_cameo_ids(job))


class _Progress:
    """Reports at most every REPORT_EVERY_S seconds (and the last step) through `report`
    (`beat` of a job, `beat_shot` of a shot), which stops the render when it no longer runs."""

    REPORT_EVERY_S = 0.5

    def __init__(self, report, item_id: int, attempt: int):
        self.report = report
        self.item_id = item_id
        self.attempt = attempt
        self.last = 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if step < total and now - self.last < self.REPORT_EVERY_S:
            return
        self.last = now
        self.report(self.item_id, self.attempt, RENDER_SHARE * step / total)


def beat(job_id: int, attempt: int, progress: float) -> None:
    """A heartbeat with progress for the claimed attempt; stops the render (RenderCancelled) when
    the job was cancelled or blocked, or handed to another worker by the reaper, meanwhile."""
    if not services.report_progress(job_id=job_id, attempt=attempt, progress=progress):
        raise RenderCancelled(f"Attempt {attempt} of job {job_id} no longer runs.")


def beat_shot(shot_id: int, attempt: int, progress: float) -> None:
    """`beat` for a storyboard's shot: stops it when the storyboard ended or was requeued, or the
    shot was claimed again."""
    if not storyboards.report_shot_progress(shot_id=shot_id, attempt=attempt, progress=progress):
        raise RenderCancelled(f"Attempt {attempt} of shot {shot_id} no longer runs.")


def _finishing(share: float) -> float:
    return RENDER_SHARE + (1 - RENDER_SHARE) * share


def execute_generation(job_id: int, *, renderer=None) -> Generation | None:
    job = services.start_generation(job_id=job_id)
    if job is None:
        return None
    attempt = job.attempts
    try:
        lapsed = services.consent_lapsed(job)
        if lapsed is not None:
            return services.end_generation(
                job_id=job_id,
                status=GenerationStatus.BLOCKED,
                code="consent_revoked",
                message=f"Consent for cameo {lapsed['cameo_id']} changed before the job started.",
                attempt=attempt,
            )
        clock = time.perf_counter()
        timings = {}
        if job.mode == GenerationMode.STITCH:
            frames, track = joined_sources(job, attempt)
            model_id, conditioning = STITCH_MODEL_ID, None
        elif job.mode == GenerationMode.STORYBOARD:
            frames, track, model_id, conditioning = joined_shots(job, attempt)
        else:
            renderer = renderer or get_renderer()
            request = render_request(job)
            timings["prepare_s"], clock = time.perf_counter() - clock, time.perf_counter()
            rendered = renderer.render(request, _Progress(beat, job_id, attempt))
            frames, track = rendered.frames, rendered.sound
            model_id, conditioning = renderer.model_id_for(request), cameo_conditioning(request)
        timings["render_s"], clock = time.perf_counter() - clock, time.perf_counter()
        # The stages after rendering beat too: without it the reaper would take a long finish for a
        # dead worker and queue the job again.
        beat(job_id, attempt, _finishing(0.0))
        # A storyboard's shots were scanned each, by the workers that rendered them.
        intruders = [] if job.mode == GenerationMode.STORYBOARD else unconsented_faces(frames, job)
        if intruders:
            return services.end_generation(
                job_id=job_id,
                status=GenerationStatus.BLOCKED,
                code="unconsented_likeness",
                message="The video shows the face of someone (a cameo or a protected person) who is not part of this job.",
                attempt=attempt,
            )
        beat(job_id, attempt, _finishing(0.3))
        clip = finish_frames(frames, job)
        track = finish_sound(track, len(clip) / settings.GENERATION_FPS)
        beat(job_id, attempt, _finishing(0.6))
        metadata = {
            labels.AIGC_KEY: labels.aigc_metadata(
                content_id=str(job.content_id), producer=settings.GENERATION_PROVIDER
            )
        }
        data = encoding.encode_mp4(clip, fps=settings.GENERATION_FPS, metadata=metadata, sound=track)
        beat(job_id, attempt, _finishing(0.9))
        timings["finish_s"], clock = time.perf_counter() - clock, time.perf_counter()
        frame_hashes = fingerprints.fingerprint_frames(clip, fps=settings.GENERATION_FPS)
        timings["fingerprint_s"], clock = time.perf_counter() - clock, time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{job.content_id}.mp4"
            path.write_bytes(data)
            done = services.complete_generation(
                job_id=job_id,
                video_path=str(path),
                model_id=model_id,
                conditioning=conditioning,
                attempt=attempt,
                fingerprints=frame_hashes,
            )
        timings["store_s"] = time.perf_counter() - clock
        Generation.objects.filter(pk=job_id, attempts=attempt).update(
            timings={k: round(v, 4) for k, v in timings.items()}
        )
        return done
    except RenderCancelled:
        return Generation.objects.get(pk=job_id)
    except BackendError as exc:
        logger.warning("generation %s failed: %s", job_id, exc)
        return services.end_generation(
            job_id=job_id, status=GenerationStatus.FAILED, code=exc.code, message=str(exc), attempt=attempt
        )
    except Exception as exc:
        logger.exception("generation %s failed", job_id)
        services.end_generation(
            job_id=job_id,
            status=GenerationStatus.FAILED,
            code="generation_failed",
            message=f"{type(exc).__name__}: {exc}",
            attempt=attempt,
        )
        raise


def execute_shot(shot_id: int, *, renderer=None) -> GenerationShot | None:
    """One shot of a storyboard, from claim to stored clip: consent recheck -> render picture and
    sound (progress and heartbeat per step; the shot stops when its storyboard ends) -> likeness
    scan -> the clip held to the shot's length, sound fitted to it, as an MP4 that waits in the
    media storage for the join. Labels and the watermark come once, at the join. A shot that
    fails, or shows a face without consent, ends the whole storyboard."""
    shot = storyboards.start_shot(shot_id=shot_id)
    if shot is None:
        return None
    job, attempt = shot.generation, shot.attempts

    def end(status: str, code: str, message: str) -> GenerationShot:
        storyboards.end_storyboard_from_shot(
            shot_id=shot_id, attempt=attempt, status=status, code=code, message=message
        )
        return shot

    try:
        lapsed = services.consent_lapsed(job)
        if lapsed is not None:
            return end(
                GenerationStatus.BLOCKED,
                "consent_revoked",
                f"Consent for cameo {lapsed['cameo_id']} changed before the shot started.",
            )
        clock = time.perf_counter()
        renderer = renderer or get_renderer()
        request = render_request(job, shot)
        rendered = renderer.render(request, _Progress(beat_shot, shot_id, attempt))
        timings = {"render_s": time.perf_counter() - clock}
        clock = time.perf_counter()
        beat_shot(shot_id, attempt, _finishing(0.0))
        if unconsented_faces(rendered.frames, job):
            return end(
                GenerationStatus.BLOCKED,
                "unconsented_likeness",
                "The shot shows the face of someone (a cameo or a protected person) who is not part of this storyboard.",
            )
        fps = settings.GENERATION_FPS
        clip = encoding.stretch_to_duration(rendered.frames, duration_s=shot.duration_s, fps=fps)
        track = None if rendered.sound is None else sound.fit_to_duration(rendered.sound, len(clip) / fps)
        data = encoding.encode_mp4(clip, fps=fps, sound=track)
        beat_shot(shot_id, attempt, _finishing(0.6))
        name = default_storage.save(storyboards.shot_output_name(job, shot), ContentFile(data))
        timings["finish_s"] = time.perf_counter() - clock
        stored = storyboards.complete_shot(
            shot_id=shot_id,
            attempt=attempt,
            output_name=name,
            model_id=renderer.model_id_for(request),
            conditioning=cameo_conditioning(request),
            timings={key: round(value, 4) for key, value in timings.items()},
        )
        if not stored:
            storyboards.delete_outputs([name])
        return shot
    except RenderCancelled:
        return shot
    except BackendError as exc:
        logger.warning("shot %s failed: %s", shot_id, exc)
        return end(GenerationStatus.FAILED, exc.code, str(exc))
    except Exception as exc:
        logger.exception("shot %s failed", shot_id)
        end(GenerationStatus.FAILED, "generation_failed", f"{type(exc).__name__}: {exc}")
        raise
