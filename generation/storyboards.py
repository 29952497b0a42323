"""Storyboards: one video made of 2 to MAX_SHOTS shots, each rendered by its own GPU task.

A request is checked shot by shot before anything is written (`plan_storyboard`: the cameos each
shot names or mentions, its composed prompt through moderation and IP), costs one quota unit per
shot, and becomes one Generation (mode `storyboard`: the union of the shots' cameos and consents,
so a consent withdrawn for any shot blocks the whole storyboard, as cancelling cancels it) with a
GenerationShot row per shot.

The outbox sends it as a Celery chord (`services.enqueue_storyboard`): the shots' tasks on the GPU
queue, in parallel across workers, then the join task on the CPU queue, which runs the job's usual
finishing once (label, watermark, store, provenance). Each shot is claimed with its own attempt
count and heartbeat (`start_shot`), and its beats keep the storyboard's heartbeat fresh; a
storyboard that stops beating is requeued by the reaper and sent again, and only its shots not
yet rendered are rendered again. A join that finds a shot still unrendered does nothing: the chord
that renders it brings its own join.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Avg
from django.utils import timezone

from core.errors import ApiError, RuleRefusal
from core.realtime import push_to_user
from generation.models import IN_FLIGHT, Generation, GenerationShot, GenerationStatus

logger = logging.getLogger(__name__)

MIN_SHOTS, MAX_SHOTS = 2, 6


@dataclass(frozen=True)
class ShotRequest:
    prompt: str
    duration_s: int
    cameo_ids: Sequence = ()


@dataclass
class PlannedShot:
    prompt: str
    composed_prompt: str
    duration_s: int
    likenesses: list
    licences: list[dict]
    seed: int


@dataclass
class StoryboardPlan:
    shots: list[PlannedShot] = field(default_factory=list)

    def job_fields(self) -> dict:
        """The storyboard's Generation fields: its shots' prompts in order, their lengths added up,
        every cameo and licence of any shot once."""
        likenesses = {}
        licences = {}
        for shot in self.shots:
            for likeness in shot.likenesses:
                likenesses.setdefault(likeness.cameo.pk, likeness)
            for licence in shot.licences:
                licences.setdefault(json.dumps(licence, sort_keys=True), licence)
        return {
            "prompt": "\n".join(shot.prompt for shot in self.shots),
            "composed_prompt": "\n".join(shot.composed_prompt for shot in self.shots),
            "duration_s": sum(shot.duration_s for shot in self.shots),
            "cameo_ids": [pk for pk, likeness in likenesses.items() if likeness.inherited_from is None],
            "likeness_ids": list(likenesses),
            "cameo_consents": [likeness.consent_entry() for likeness in likenesses.values()],
            "licences": list(licences.values()),
        }

    def shot_rows(self) -> list[GenerationShot]:
        return [
            GenerationShot(
                index=index,
                prompt=shot.prompt,
                composed_prompt=shot.composed_prompt,
                duration_s=shot.duration_s,
                cameo_ids=[likeness.cameo.pk for likeness in shot.likenesses],
                likeness_ids=[likeness.cameo.pk for likeness in shot.likenesses],
                seed=shot.seed,
            )
            for index, shot in enumerate(self.shots)
        ]


def shot_seed(seed: int, index: int) -> int:
    """Each shot's own seed, derived from the storyboard's so one seed repeats the whole video."""
    return (seed + index) % 2**31


def plan_storyboard(*, user, shots: Sequence[ShotRequest], seed: int) -> StoryboardPlan:
    """Every shot checked as a single video's request is (its cameos, by id and `@handle`, for
    `user` now; its composed prompt through moderation and IP), in order; a refusal names the shot
    (`details.shot`, 0-based). 400 for fewer than MIN_SHOTS or more than MAX_SHOTS shots, 422
    `storyboard_too_long` past STORYBOARD_MAX_DURATION_S in all."""
    from generation.services import _authorised_likenesses, _checked_prompt, _mentioned_cameos

    if not MIN_SHOTS <= len(shots) <= MAX_SHOTS:
        raise ApiError(
            f"A storyboard has {MIN_SHOTS} to {MAX_SHOTS} shots.",
            details={"shots": [f"Between {MIN_SHOTS} and {MAX_SHOTS} shots."]},
        )
    total_s = sum(shot.duration_s for shot in shots)
    if total_s > settings.STORYBOARD_MAX_DURATION_S:
        raise RuleRefusal(
            f"A storyboard is at most {settings.STORYBOARD_MAX_DURATION_S} s; these shots add up to {total_s} s.",
            code="storyboard_too_long",
            details={"max_s": settings.STORYBOARD_MAX_DURATION_S, "duration_s": total_s},
        )
    plan = StoryboardPlan()
    for index, shot in enumerate(shots):
        try:
            likenesses = _authorised_likenesses(
                user=user, cameo_ids=shot.cameo_ids, mentions=_mentioned_cameos(shot.prompt), sources=[]
            )
            cameos = [likeness.cameo for likeness in likenesses]
            composed, licences = _checked_prompt(user=user, base_prompt=shot.prompt, cameos=cameos)
        except ApiError as refusal:
            refusal.details = {**(refusal.details or {}), "shot": index}
            raise
        plan.shots.append(
            PlannedShot(
                prompt=shot.prompt,
                composed_prompt=composed,
                duration_s=shot.duration_s,
                likenesses=likenesses,
                licences=licences,
                seed=shot_seed(seed, index),
            )
        )
    return plan


# ---- the workers' side --------------------------------------------------------------------------


def shots_rendered(job: Generation) -> bool:
    return (
        not GenerationShot.objects.filter(generation_id=job.pk)
        .exclude(status=GenerationStatus.SUCCEEDED)
        .exists()
    )


def _locked(shot_id: int) -> tuple[Generation, GenerationShot] | None:
    """A shot and its storyboard, both locked: the storyboard's row first, as every writer of a
    storyboard takes it. None when the shot is gone. Inside a transaction."""
    generation_id = GenerationShot.objects.filter(pk=shot_id).values_list("generation_id", flat=True).first()
    if generation_id is None:
        return None
    job = Generation.objects.select_for_update().get(pk=generation_id)
    return job, GenerationShot.objects.select_for_update().get(pk=shot_id)


def start_shot(*, shot_id: int) -> GenerationShot | None:
    """Claims a shot for this worker (its attempt counted; the storyboard set running), or None
    when there is nothing to do: the storyboard ended, the shot is rendered, or another worker
    renders it and still reports. A shot whose workers died GENERATION_MAX_ATTEMPTS times fails
    the storyboard with `worker_lost`."""
    from generation.services import _finish, _is_stale

    with transaction.atomic():
        locked = _locked(shot_id)
        if locked is None:
            return None
        job, shot = locked
        if job.status not in IN_FLIGHT or shot.status == GenerationStatus.SUCCEEDED:
            return None
        now = timezone.now()
        if shot.status == GenerationStatus.RUNNING and not _is_stale(shot, now):
            return None
        if shot.attempts >= settings.GENERATION_MAX_ATTEMPTS:
            shot.status = GenerationStatus.FAILED
            shot.save(update_fields=["status"])
            _finish(
                job,
                GenerationStatus.FAILED,
                code="worker_lost",
                message=f"The worker stopped during each of {shot.attempts} attempts at shot {shot.index + 1}.",
            )
            return None
        job.status = GenerationStatus.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.save(update_fields=["status", "started_at", "heartbeat_at"])
        shot.status = GenerationStatus.RUNNING
        shot.attempts += 1
        shot.started_at = now
        shot.heartbeat_at = now
        shot.progress = 0.0
        shot.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress"])
    shot.generation = job
    return shot


def report_shot_progress(*, shot_id: int, attempt: int, progress: float) -> bool:
    """A shot's progress and heartbeat, and the storyboard's (SHOTS_SHARE of its shots' average);
    False when the attempt no longer runs the shot: the storyboard ended (cancelled, blocked,
    failed) or was requeued, or another worker claimed the shot. The worker stops then."""
    progress = max(0.0, min(1.0, progress))
    now = timezone.now()
    with transaction.atomic():
        updated = GenerationShot.objects.filter(
            pk=shot_id,
            status=GenerationStatus.RUNNING,
            attempts=attempt,
            generation__status=GenerationStatus.RUNNING,
        ).update(progress=progress, heartbeat_at=now)
        if not updated:
            return False
        generation_id, user_id = GenerationShot.objects.values_list(
            "generation_id", "generation__user_id"
        ).get(pk=shot_id)
        overall = _update_progress(generation_id, heartbeat_at=now)
        push_to_user(
            user_id, {"type": "generation.progress", "id": str(generation_id), "progress": round(overall, 3)}
        )
    return True


def complete_shot(
    *, shot_id: int, attempt: int, output_name: str, model_id: str, conditioning: dict, timings: dict
) -> bool:
    """Records a rendered shot's output; False (the caller discards the output) when the attempt no
    longer runs the shot, or a consent the storyboard relies on changed meanwhile (which blocks
    it, as storing a video does)."""
    from generation.services import _finish, consent_lapsed

    with transaction.atomic():
        locked = _locked(shot_id)
        if locked is None:
            return False
        job, shot = locked
        if job.status != GenerationStatus.RUNNING or shot.status != GenerationStatus.RUNNING:
            return False
        if shot.attempts != attempt:
            return False
        lapsed = consent_lapsed(job)
        if lapsed is not None:
            shot.status = GenerationStatus.BLOCKED
            shot.save(update_fields=["status"])
            _finish(
                job,
                GenerationStatus.BLOCKED,
                code="consent_revoked",
                message=f"Consent for cameo {lapsed['cameo_id']} changed while shot {shot.index + 1} rendered.",
            )
            return False
        shot.status = GenerationStatus.SUCCEEDED
        shot.progress = 1.0
        shot.finished_at = timezone.now()
        shot.output_name = output_name
        shot.model_id = model_id
        shot.conditioning = conditioning
        shot.timings = timings
        shot.save(
            update_fields=[
                "status", "progress", "finished_at", "output_name", "model_id", "conditioning", "timings"
            ]
        )  # fmt: skip
        _update_progress(job.pk)
    return True


def _update_progress(generation_id: int, **also) -> float:
    """The storyboard's progress: SHOTS_SHARE of its shots' average (with `also`, other fields of
    the same row, in the same statement)."""
    from generation.services import SHOTS_SHARE

    average = GenerationShot.objects.filter(generation_id=generation_id).aggregate(value=Avg("progress"))
    overall = SHOTS_SHARE * float(average["value"] or 0.0)
    Generation.objects.filter(pk=generation_id, status=GenerationStatus.RUNNING).update(
        progress=overall, **also
    )
    return overall


def end_storyboard_from_shot(*, shot_id: int, attempt: int, status: str, code: str, message: str) -> None:
    """Ends the storyboard because of one shot (failed, or blocked: a likeness without consent, a
    consent lapsed), while that attempt still runs the shot: a shot is not a video of its own."""
    from generation.services import _finish

    with transaction.atomic():
        locked = _locked(shot_id)
        if locked is None:
            return
        job, shot = locked
        if job.status not in IN_FLIGHT or shot.status != GenerationStatus.RUNNING or shot.attempts != attempt:
            return
        shot.status = status
        shot.finished_at = timezone.now()
        shot.save(update_fields=["status", "finished_at"])
        _finish(job, status, code=code, message=f"Shot {shot.index + 1}: {message}")


def end_shots(job: Generation) -> None:
    """When a storyboard ends: its unfinished shots are cancelled (a worker rendering one stops at
    its next step), and once that commits, the shots' outputs are deleted (a succeeded storyboard's
    are in its post now). Runs inside `services._finish`, holding the job's lock."""
    now = timezone.now()
    GenerationShot.objects.filter(generation_id=job.pk, status__in=IN_FLIGHT).update(
        status=GenerationStatus.CANCELLED, finished_at=now
    )
    outputs = list(
        GenerationShot.objects.filter(generation_id=job.pk)
        .exclude(output_name="")
        .values_list("output_name", flat=True)
    )
    if outputs:
        transaction.on_commit(lambda: delete_outputs(outputs))


def delete_outputs(names: Sequence[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete the shot output %s", name, exc_info=True)


def shot_output_name(job: Generation, shot: GenerationShot) -> str:
    """Where a shot's rendered clip waits for the join: beside no post, under the job's content id."""
    return f"storyboard-shots/{job.content_id}/{shot.index}-{shot.attempts}.mp4"
