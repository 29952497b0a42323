"""What a GPU worker does with one job, from claim to draft post (a stitch, on a CPU worker, joins
its sources where others render).

claim -> consent recheck -> render (progress + heartbeat per step; a cancelled or blocked job stops
at the next step) -> duration, visible label, watermark -> likeness scan -> H.264 MP4 with the AIGC
tag -> frame fingerprints -> consent recheck, store, provenance, fingerprints, draft post,
notifications (one transaction).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from generation import encoding, fingerprints, joining, labels, services, watermark
from generation.backends import (
    BackendError,
    IdentityInput,
    ReferenceImage,
    RenderCancelled,
    RenderRequest,
    cameo_conditioning,
    get_renderer,
)
from generation.models import Generation, GenerationMode, GenerationStatus

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


def cameo_conditioning_inputs(job: Generation) -> tuple[IdentityInput | None, tuple[ReferenceImage, ...]]:
    """One reference image per cameo of the job (named, then inherited), and the identity of its
    first person; the renderer's routing (generation.backends.route) decides which is used."""
    if not job.likeness_ids:
        return None, ()
    from cameo.models import Cameo, CameoKind
    from cameo.references import NoPicture, conditioning_image

    cameos = Cameo.objects.in_bulk(list(job.likeness_ids))
    references, identity = [], None
    for cameo_id in job.likeness_ids:
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


def render_request(job: Generation) -> RenderRequest:
    width, height = settings.GENERATION_SIZES[job.aspect_ratio]
    identity, references = cameo_conditioning_inputs(job)
    init_image = None
    if job.mode == "continue" and job.remix_of_id is not None:
        init_image = last_frame_of(job.remix_of)
    return RenderRequest(
        prompt=job.composed_prompt or job.prompt,
        seed=job.seed,
        width=width,
        height=height,
        num_frames=frame_count(job.duration_s),
        num_inference_steps=settings.GENERATION_STEPS,
        guidance_scale=settings.GENERATION_GUIDANCE,
        identity=identity,
        references=references,
        init_image=init_image,
    )


def finish_frames(frames: np.ndarray, job: Generation) -> np.ndarray:
    """The visible label and the watermark on the clip, a rendered one first held to the job's
    duration (a stitch's frames already have theirs)."""
    fps = settings.GENERATION_FPS
    clip = frames
    if job.mode != GenerationMode.STITCH:
        clip = encoding.stretch_to_duration(frames, duration_s=job.duration_s, fps=fps)
    clip = labels.stamp_visible_label(clip, fps=fps, platform_mark=settings.GENERATION_PLATFORM_MARK)
    return watermark.embed(clip, job.content_id)


# What a stitch's provenance names as its model: none rendered it.
STITCH_MODEL_ID = "stitch"


def joined_sources(job: Generation, attempt: int) -> np.ndarray:
    """A stitch's posts decoded and joined (generation.joining) at the job's size and
    GENERATION_FPS. Each source is checked again as the request checked it (a post removed,
    made private to the requester or closed to remixing since fails the job with that code)."""
    from core.errors import ApiError

    # A post that comes more than once is checked and decoded once.
    decoded: dict[int, joining.Clip] = {}
    distinct = list(dict.fromkeys(job.source_ids))
    for index, post_id in enumerate(distinct):
        try:
            post = services.check_stitch_source(user=job.user, post_id=post_id)
        except ApiError as refusal:
            raise BackendError(
                f"Post {post_id} can no longer be stitched: {refusal}", code=refusal.code
            ) from refusal
        with post.video.open("rb") as handle:
            video = encoding.decode_mp4(handle)
        decoded[post_id] = joining.Clip(video.frames, video.fps or settings.GENERATION_FPS)
        beat(job.pk, attempt, RENDER_SHARE * (index + 1) / len(distinct))
    clips = [decoded[post_id] for post_id in job.source_ids]
    width, height = settings.GENERATION_SIZES[job.aspect_ratio]
    return joining.join(clips, width=width, height=height, fps=settings.GENERATION_FPS)


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
    """Reports at most every REPORT_EVERY_S seconds (and the last step), and stops the render when
    the job is no longer running."""

    REPORT_EVERY_S = 0.5

    def __init__(self, job_id: int, attempt: int):
        self.job_id = job_id
        self.attempt = attempt
        self.last = 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if step < total and now - self.last < self.REPORT_EVERY_S:
            return
        self.last = now
        beat(self.job_id, self.attempt, RENDER_SHARE * step / total)


def beat(job_id: int, attempt: int, progress: float) -> None:
    """A heartbeat with progress for the claimed attempt; stops the render (RenderCancelled) when
    the job was cancelled or blocked, or handed to another worker by the reaper, meanwhile."""
    if not services.report_progress(job_id=job_id, attempt=attempt, progress=progress):
        raise RenderCancelled(f"Attempt {attempt} of job {job_id} no longer runs.")


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
            frames = joined_sources(job, attempt)
            model_id, conditioning = STITCH_MODEL_ID, None
        else:
            renderer = renderer or get_renderer()
            request = render_request(job)
            timings["prepare_s"], clock = time.perf_counter() - clock, time.perf_counter()
            frames = renderer.generate(request, _Progress(job_id, attempt))
            model_id, conditioning = renderer.model_id_for(request), cameo_conditioning(request)
        timings["render_s"], clock = time.perf_counter() - clock, time.perf_counter()
        # The stages after rendering beat too: without it the reaper would take a long finish for a
        # dead worker and queue the job again.
        beat(job_id, attempt, _finishing(0.0))
        intruders = unconsented_faces(frames, job)
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
        beat(job_id, attempt, _finishing(0.6))
        metadata = {
            labels.AIGC_KEY: labels.aigc_metadata(
                content_id=str(job.content_id), producer=settings.GENERATION_PROVIDER
            )
        }
        data = encoding.encode_mp4(clip, fps=settings.GENERATION_FPS, metadata=metadata)
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
