"""Every write of the generation app: requesting, running, finishing, cancelling and reaping jobs.

A request is refused (and nothing enqueued) for: an invisible source (404), a source that may not
be remixed (403 `remix_not_allowed`), a cameo the user may not use, by id or `@handle` (403
`cameo_not_permitted`), more than MAX_CAMEOS_PER_JOB cameos in all (422 `too_many_cameos`), a
prompt the moderation rules refuse (422 `prompt_rejected`), an unlicensed IP (422
`ip_not_licensed`), or a spent quota (429 `quota_exceeded` with Retry-After).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from cameo import moderation
from cameo.mentions import MAX_CAMEOS_PER_JOB
from core.errors import ApiError, Conflict, NotFound, RateLimited, RuleRefusal
from core.realtime import push_to_user
from generation.models import (
    IN_FLIGHT,
    ContentFingerprint,
    Generation,
    GenerationMode,
    GenerationShot,
    GenerationStatus,
    Provenance,
)
from social.models import NotificationKind, Post, User

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 2000
IN_FLIGHT_RETRY_AFTER_S = 30
# The share of a storyboard's progress its shots make (their average); its join makes the rest.
SHOTS_SHARE = 0.9


def used_today(user: User) -> int:
    """Quota units (one per rendered shot) of the jobs started today (UTC): all but our own
    failures."""
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    used = (
        Generation.objects.filter(user_id=user.pk, created_at__gte=start)
        .exclude(status=GenerationStatus.FAILED)
        .aggregate(units=Sum("quota_units"))["units"]
    )
    return used or 0


def _seconds_until_midnight_utc() -> int:
    now = timezone.now()
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((tomorrow - now).total_seconds()) + 1


def _check_quota(user: User, units: int = 1) -> None:
    """Whether `user` may start a job costing `units` (a storyboard costs one per shot). Called
    with the user's row locked, so two requests cannot both take the last slot."""
    tier = user.tier if user.tier in settings.GENERATION_DAILY_LIMITS else "free"
    in_flight_cap = settings.GENERATION_MAX_IN_FLIGHT.get(tier, settings.GENERATION_MAX_IN_FLIGHT["free"])
    in_flight = Generation.objects.filter(user_id=user.pk, status__in=IN_FLIGHT).count()
    if in_flight >= in_flight_cap:
        raise RateLimited(
            f"You already have {in_flight} videos in progress; wait for one to finish.",
            code="quota_exceeded",
            retry_after=IN_FLIGHT_RETRY_AFTER_S,
            details={"reason": "in_flight", "limit": in_flight_cap},
        )
    daily_limit = settings.GENERATION_DAILY_LIMITS[tier]
    used = used_today(user)
    if used + units > daily_limit:
        raise RateLimited(
            "You have used today's generations."
            if used >= daily_limit
            else f"This needs {units} of today's generations; {daily_limit - used} are left.",
            code="quota_exceeded",
            retry_after=_seconds_until_midnight_utc(),
            details={"reason": "daily", "limit": daily_limit, "used": used, "needed": units},
        )


def _authorised_likenesses(
    *,
    user: User,
    cameo_ids: Sequence,
    sources: Sequence[Post],
    mentions: dict[int, str] | None = None,
    max_cameos: int = MAX_CAMEOS_PER_JOB,
) -> list:
    """Every cameo the video will carry (named by id, then mentioned, then inherited from its
    sources), each authorised for `user` now by the one rule (cameo.lineage); 422
    `too_many_cameos` past MAX_CAMEOS_PER_JOB in all, 403 `cameo_not_permitted` for the first that
    is not usable (naming the mention, not the cameo behind it, for one the prompt mentions).
    A stitch, which conditions no model on them, may carry up to `max_cameos`."""
    from cameo.lineage import authorize_likenesses, job_likenesses

    mentions = mentions or {}
    likenesses = job_likenesses(cameo_ids=[*cameo_ids, *mentions], sources=sources)
    if len(likenesses) > max_cameos:
        raise RuleRefusal(
            f"A video shows at most {max_cameos} cameos; this one would show {len(likenesses)}.",
            code="too_many_cameos",
            details={"max": max_cameos, "cameos": [str(item.cameo_id) for item in likenesses]},
        )
    try:
        return authorize_likenesses(user=user, likenesses=likenesses)
    except ApiError as refusal:
        named = {str(cameo_id) for cameo_id in cameo_ids}
        mentioned_only = {str(pk): handle for pk, handle in mentions.items() if str(pk) not in named}
        refused = refusal.details.get("cameo") if refusal.code == "cameo_not_permitted" else None
        if refused in mentioned_only:
            raise _mention_not_permitted(mentioned_only[refused]) from refusal
        raise


def _mentioned_cameos(prompt: str) -> dict[int, str]:
    """{cameo id: handle} for the `@handle` mentions of `prompt`, in order (cameo.mentions; 422
    `too_many_cameos` past MAX_CAMEOS_PER_JOB). A handle no cameo holds is refused exactly as one
    the user may not use, so the answer tells nobody which handles exist."""
    from cameo.mentions import find_mentions, resolve_mentions

    try:
        cameos = resolve_mentions(handles=find_mentions(prompt))
    except RuleRefusal as refusal:
        if refusal.code != "unknown_mention":
            raise
        raise _mention_not_permitted(refusal.details["handle"]) from refusal
    return {cameo.pk: cameo.handle for cameo in cameos}


def _mention_not_permitted(handle: str) -> ApiError:
    from cameo.services import cameo_not_permitted

    refusal = cameo_not_permitted(f"@{handle}")
    refusal.details = {"mention": handle}
    return refusal


def compose_prompt(*, base_prompt: str, cameos: Sequence) -> str:
    """The prompt the model sees: the user's (or remix-composed) prompt with each `@handle` written
    out as its owner describes the cameo (cameo.mentions.compose_cameo_prompt), then the owner's
    own description of how they appear for each cameo the prompt does not mention."""
    from cameo.mentions import compose_cameo_prompt

    parts = [compose_cameo_prompt(base_prompt, cameos).strip()]
    for cameo in cameos:
        if compose_cameo_prompt(base_prompt, [cameo]) != base_prompt:
            continue  # mentioned: described where the prompt names it
        instructions = cameo.instructions.strip()
        if instructions:
            name = cameo.display_name or cameo.owner.username
            parts.append(f"{name}: {instructions}")
    return ". ".join(part.rstrip(".") for part in parts if part)


def _check_ip(*, user: User, prompt: str, has_cameos: bool) -> list[dict]:
    from remix.ip import check_ip_use

    return [use.as_dict() for use in check_ip_use(user=user, prompt=prompt, has_cameos=has_cameos)]


@dataclass
class GenerationRequest:
    prompt: str
    duration_s: int
    aspect_ratio: str
    cameo_ids: Sequence = ()
    remix_of: int | None = None
    mode: str | None = None
    seed: int | None = None
    # A stitch's posts in order (mode stitch; prompt, duration and aspect ratio come from them).
    source_ids: Sequence[int] = ()
    caption: str = ""
    audio: bool = True
    # A storyboard's shots (generation.storyboards.ShotRequest), instead of prompt and duration.
    shots: Sequence = ()


# A stitch joins at most this many posts, at most this long in all; it may carry every cameo of
# its sources (no model is conditioned on them), at most this many.
MAX_STITCH_SOURCES = 10
MAX_CAMEOS_PER_STITCH = MAX_STITCH_SOURCES * MAX_CAMEOS_PER_JOB


def check_stitch_source(*, user: User, post_id) -> Post:
    """A post `user` may stitch: their own (a draft only if it could be published now) or a
    published post that allows remixing, exactly the posts they may remix (remix.services:
    404 for what they cannot see, blocks and removed posts included; 403 `remix_not_allowed`;
    409 `consent_revoked`), and one that still has its video."""
    from remix.services import check_remix_allowed

    source = check_remix_allowed(user=user, source_post=post_id)
    if not source.video.name:
        raise NotFound("No such post.")
    return source


def stitch_request(request: GenerationRequest, sources: Sequence[Post]) -> GenerationRequest:
    """What a stitch of `sources` is: their prompts one after another, their lengths added up (422
    `stitch_too_long` past STITCH_MAX_DURATION_S), the first one's aspect ratio."""
    from generation.joining import nearest_aspect
    from generation.models import AspectRatio

    total_s = sum(source.duration_s for source in sources)
    if total_s > settings.STITCH_MAX_DURATION_S:
        raise RuleRefusal(
            f"A stitch is at most {settings.STITCH_MAX_DURATION_S} s; these posts add up to {total_s:.1f} s.",
            code="stitch_too_long",
            details={"max_s": settings.STITCH_MAX_DURATION_S, "duration_s": round(total_s, 3)},
        )
    first = sources[0]
    aspect = (
        nearest_aspect(first.width, first.height, AspectRatio.values)
        if first.width and first.height
        else AspectRatio.PORTRAIT
    )
    return GenerationRequest(
        prompt="\n".join(source.prompt for source in sources if source.prompt)[:MAX_PROMPT_CHARS],
        duration_s=max(1, round(total_s)),
        aspect_ratio=aspect,
        mode=GenerationMode.STITCH,
        seed=0,
        source_ids=[source.pk for source in sources],
        caption=request.caption,
    )


def request_generation(
    *, user: User, request: GenerationRequest, idempotency_key: str = "", enqueue_job: bool = True
) -> tuple[Generation, bool]:
    """Validates, checks rights and quota, writes the job and enqueues it once the write commits
    (`enqueue_job=False` leaves running it to the caller, as the demo seeding does).
    Returns (job, created); the same idempotency key from the same user returns the same job. A key
    longer than the column holds is refused, not cut: two long keys with the same start would
    return each other's job."""
    idempotency_key = idempotency_key.strip()
    key_max = Generation._meta.get_field("idempotency_key").max_length
    if len(idempotency_key) > key_max:
        raise ApiError(
            f"The Idempotency-Key is longer than {key_max} characters.",
            details={"Idempotency-Key": [f"At most {key_max} characters."]},
        )
    if idempotency_key:
        existing = Generation.objects.filter(user_id=user.pk, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    if request.shots:
        if request.mode not in (None, GenerationMode.STORYBOARD) or request.remix_of is not None:
            raise ApiError(
                "A storyboard is a new video: it takes no remix_of and no other mode.",
                details={"shots": ["Not with remix_of or mode."]},
            )
        return _request_storyboard(
            user=user, request=request, idempotency_key=idempotency_key, enqueue_job=enqueue_job
        )
    mode = request.mode or (GenerationMode.REMIX if request.remix_of is not None else GenerationMode.CREATE)
    source = None  # a remix's or continuation's one source
    if mode == GenerationMode.STITCH:
        if not 2 <= len(request.source_ids) <= MAX_STITCH_SOURCES:
            raise ApiError(
                f"A stitch joins 2 to {MAX_STITCH_SOURCES} posts.",
                details={"post_ids": [f"Between 2 and {MAX_STITCH_SOURCES} ids."]},
            )
        # A post may come more than once; each is checked once.
        checked = {
            post_id: check_stitch_source(user=user, post_id=post_id)
            for post_id in dict.fromkeys(request.source_ids)
        }
        request = stitch_request(request, [checked[post_id] for post_id in request.source_ids])
        likenesses = _authorised_likenesses(
            user=user, cameo_ids=(), sources=list(checked.values()), max_cameos=MAX_CAMEOS_PER_STITCH
        )
        base_prompt = request.prompt
    else:
        if (mode == GenerationMode.CREATE) != (request.remix_of is None):
            raise ApiError(
                "A remix or continuation needs remix_of, and remix_of needs mode remix or continue.",
                details={"mode": ["Does not match remix_of."]},
            )
        base_prompt = request.prompt
        if request.remix_of is not None:
            from remix.composition import compose_remix_prompt
            from remix.services import check_remix_allowed

            source = check_remix_allowed(user=user, source_post=request.remix_of)
            base_prompt = compose_remix_prompt(
                source_prompt=source.prompt, instruction=request.prompt, mode=mode
            )
        likenesses = _authorised_likenesses(
            user=user,
            cameo_ids=request.cameo_ids,
            mentions=_mentioned_cameos(request.prompt),
            sources=[source] if source else [],
        )
    cameos = [likeness.cameo for likeness in likenesses]
    composed, licences = _checked_prompt(user=user, base_prompt=base_prompt, cameos=cameos)
    fields = {
        "prompt": request.prompt,
        "composed_prompt": composed,
        "mode": mode,
        "duration_s": request.duration_s,
        "aspect_ratio": request.aspect_ratio,
        "cameo_ids": [likeness.cameo.pk for likeness in likenesses if likeness.inherited_from is None],
        "likeness_ids": [cameo.pk for cameo in cameos],
        "cameo_consents": [likeness.consent_entry() for likeness in likenesses],
        "remix_of": source,
        "source_ids": [int(post_id) for post_id in request.source_ids],
        "caption": request.caption,
        "seed": request.seed if request.seed is not None else secrets.randbelow(2**31),
        "audio": request.audio,
        "licences": licences,
    }
    return _create_job(user=user, fields=fields, idempotency_key=idempotency_key, enqueue_job=enqueue_job)


def _checked_prompt(*, user: User, base_prompt: str, cameos: Sequence) -> tuple[str, list[dict]]:
    """The prompt the model renders (`compose_prompt`) and the licences it uses, once the rules
    passed it: the composed prompt is what they judge, so an owner's instructions cannot carry
    what a prompt may not (422 `prompt_rejected`, `ip_not_licensed`)."""
    composed = compose_prompt(base_prompt=base_prompt, cameos=cameos)
    moderation.check_prompt(prompt=composed, cameos=cameos)
    return composed, _check_ip(user=user, prompt=composed, has_cameos=bool(cameos))


def _request_storyboard(
    *, user: User, request: GenerationRequest, idempotency_key: str, enqueue_job: bool
) -> tuple[Generation, bool]:
    """A storyboard: every shot checked (consent, moderation, IP) before anything is written, one
    quota unit per shot, one job with a row per shot (generation.storyboards)."""
    from generation.storyboards import plan_storyboard

    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    plan = plan_storyboard(user=user, shots=request.shots, seed=seed)
    fields = {
        **plan.job_fields(),
        "mode": GenerationMode.STORYBOARD,
        "aspect_ratio": request.aspect_ratio,
        "seed": seed,
        "audio": request.audio,
        "caption": request.caption,
    }
    return _create_job(
        user=user,
        fields=fields,
        idempotency_key=idempotency_key,
        enqueue_job=enqueue_job,
        shots=plan.shot_rows(),
    )


def _create_job(
    *, user: User, fields: dict, idempotency_key: str, enqueue_job: bool, shots: Sequence = ()
) -> tuple[Generation, bool]:
    """Writes the job (and a storyboard's shots) once the quota allows it, with the user's row
    locked, and sends it once the write commits."""
    units = max(1, len(shots))
    try:
        with transaction.atomic():
            locked_user = User.objects.select_for_update().get(pk=user.pk)
            if idempotency_key:
                existing = Generation.objects.filter(user_id=user.pk, idempotency_key=idempotency_key).first()
                if existing is not None:
                    return existing, False
            _check_quota(locked_user, units)
            job = Generation.objects.create(
                user=locked_user,
                idempotency_key=idempotency_key,
                content_id=uuid.uuid4(),
                quota_units=units,
                **fields,
            )
            for shot in shots:
                shot.generation = job
            GenerationShot.objects.bulk_create(shots)
            if enqueue_job:
                # Sent once the row is committed; if the broker cannot take it now, the job stays
                # in the outbox (`dispatched_at` null) and the periodic dispatcher sends it later.
                transaction.on_commit(lambda: dispatch_generations(job_ids=[job.pk]))
    except IntegrityError:
        # Two requests with one key raced; the loser returns the winner's job.
        existing = Generation.objects.filter(user_id=user.pk, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    return job, True


def enqueue(job_id: int) -> None:
    """Hands one job's message to the broker (the GPU queue); raises when the broker cannot take it."""
    from generation.tasks import run_generation

    # No publish retries here: a job the broker cannot take stays in the outbox.
    run_generation.apply_async(args=[job_id], retry=False)


def enqueue_stitch(job_id: int) -> None:
    """Hands a stitch's message to the broker: the CPU queue's task, as a stitch renders nothing."""
    from generation.tasks import join_clips

    join_clips.apply_async(args=[job_id], retry=False)


def enqueue_storyboard(job_id: int) -> None:
    """Hands a storyboard to the broker as a chord: one GPU task per shot not yet rendered, then
    the join task on the CPU queue (alone when every shot is rendered: the job was requeued after
    its join stopped)."""
    from celery import chord

    from generation.tasks import join_clips, render_shot

    pending = list(
        GenerationShot.objects.filter(generation_id=job_id)
        .exclude(status=GenerationStatus.SUCCEEDED)
        .values_list("pk", flat=True)
    )
    join = join_clips.si(job_id)
    if not pending:
        join.apply_async(retry=False)
        return
    chord([render_shot.si(shot_id) for shot_id in pending], join).apply_async(retry=False)


def dispatch_generations(*, job_ids: Sequence[int] | None = None) -> list[int]:
    """The outbox of jobs (core.outbox): sends queued jobs to the broker; returns the ids sent.

    A job is due when it was never sent, or was sent more than GENERATION_REDISPATCH_AFTER_S ago
    and no worker has claimed it since: its message may have been lost. A worker's claim
    (`start_generation`) is idempotent, so a job sent twice runs once.
    """
    from core.outbox import dispatch_due

    resend_before = timezone.now() - dt.timedelta(seconds=settings.GENERATION_REDISPATCH_AFTER_S)
    due = Generation.objects.filter(status=GenerationStatus.QUEUED).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before)
    )
    if job_ids is not None:
        due = due.filter(pk__in=list(job_ids))
    senders = {GenerationMode.STITCH: enqueue_stitch, GenerationMode.STORYBOARD: enqueue_storyboard}
    sent = dispatch_due(due=due.exclude(mode__in=list(senders)), sent_field="dispatched_at", send=enqueue)
    for mode, send in senders.items():
        sent += dispatch_due(due=due.filter(mode=mode), sent_field="dispatched_at", send=send)
    return sent


def get_own_generation(*, user: User, job_id) -> Generation:
    try:
        return Generation.objects.get(pk=int(job_id), user_id=user.pk)
    except (Generation.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound() from exc


def cancel_generation(*, user: User, job_id) -> Generation:
    """A queued job stops at once; a running one at its next step (its output is discarded)."""
    with transaction.atomic():
        job = get_own_generation(user=user, job_id=job_id)
        job = Generation.objects.select_for_update().get(pk=job.pk)
        if job.status == GenerationStatus.CANCELLED:
            return job
        if job.status not in IN_FLIGHT:
            raise Conflict("This generation has already finished.", code="generation_finished")
        _finish(job, GenerationStatus.CANCELLED, code="cancelled", message="Cancelled by the requester.")
    return job


def block_jobs_using_cameo(*, cameo_id: int, consent_version: int) -> int:
    """Blocks every queued or running job that relied on an older consent of this cameo, at once
    (a running job stops at its next step and its output is discarded). Returns how many."""
    blocked = 0
    with transaction.atomic():
        jobs = Generation.objects.select_for_update().filter(
            status__in=IN_FLIGHT, likeness_ids__contains=[int(cameo_id)]
        )
        for job in jobs:
            relied_on = [
                int(entry["consent_version"])
                for entry in job.cameo_consents
                if int(entry["cameo_id"]) == int(cameo_id)
            ]
            if relied_on and min(relied_on) < consent_version:
                _finish(
                    job,
                    GenerationStatus.BLOCKED,
                    code="consent_revoked",
                    message=f"The owner of cameo {cameo_id} changed or withdrew consent.",
                )
                blocked += 1
    return blocked


# ---- the worker's side -------------------------------------------------------------------------


def _finished_event(job: Generation) -> dict:
    return {
        "type": "generation.finished",
        "id": str(job.pk),
        "status": job.status,
        "post_id": None if job.post_id is None else str(job.post_id),
    }


def _finish(job: Generation, status: str, *, code: str = "", message: str = "") -> None:
    """Must run inside a transaction holding the job's row lock."""
    job.status = status
    job.error_code = code
    job.error_message = message[:1000]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error_code", "error_message", "finished_at", "progress", "post"])
    if job.mode == GenerationMode.STORYBOARD:
        from generation.storyboards import end_shots

        end_shots(job)
    push_to_user(job.user_id, _finished_event(job))


def start_generation(*, job_id: int) -> Generation | None:
    """Claims the job for this worker, or None when there is nothing to do: the job finished, or
    another worker is running it and still reporting. A job whose worker died is claimed again
    with its attempt counted; past GENERATION_MAX_ATTEMPTS it fails with `worker_lost`."""
    with transaction.atomic():
        job = Generation.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in IN_FLIGHT:
            return None
        now = timezone.now()
        storyboard = job.mode == GenerationMode.STORYBOARD
        if storyboard:
            from generation.storyboards import shots_rendered

            # A storyboard's join runs once every shot is rendered; its shots' tasks set it
            # running meanwhile, so its first join claims it whatever its heartbeat.
            if not shots_rendered(job):
                return None
        joining_first = storyboard and job.attempts == 0
        if job.status == GenerationStatus.RUNNING and not _is_stale(job, now) and not joining_first:
            return None
        if job.attempts >= settings.GENERATION_MAX_ATTEMPTS:
            _finish(
                job,
                GenerationStatus.FAILED,
                code="worker_lost",
                message=f"The worker stopped during each of {job.attempts} attempts.",
            )
            return None
        job.status = GenerationStatus.RUNNING
        job.attempts += 1
        job.started_at = job.started_at if storyboard and job.started_at else now
        job.heartbeat_at = now
        job.progress = SHOTS_SHARE if storyboard else 0.0
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress"])
    return job


def _is_stale(job: Generation, now) -> bool:
    limit = dt.timedelta(seconds=settings.GENERATION_STALE_AFTER_S)
    return job.heartbeat_at is None or now - job.heartbeat_at > limit


def report_progress(*, job_id: int, attempt: int, progress: float) -> bool:
    """Stores progress and a heartbeat for the worker running `attempt` (the attempt number
    `start_generation` claimed); False when the job is no longer that attempt's to run: cancelled
    or blocked meanwhile, or, after this worker stalled past GENERATION_STALE_AFTER_S, queued again
    by the reaper and claimed by another worker. The worker stops then; its beats never refresh
    another attempt's heartbeat."""
    progress = max(0.0, min(1.0, progress))
    with transaction.atomic():
        updated = Generation.objects.filter(
            pk=job_id, status=GenerationStatus.RUNNING, attempts=attempt
        ).update(progress=progress, heartbeat_at=timezone.now())
        if updated:
            user_id = Generation.objects.values_list("user_id", flat=True).get(pk=job_id)
            push_to_user(
                user_id,
                {"type": "generation.progress", "id": str(job_id), "progress": round(progress, 3)},
            )
    return bool(updated)


def consent_lapsed(job: Generation) -> dict | None:
    """The first likeness (named or inherited) whose consent no longer holds as it was when the job
    was requested; one query."""
    if not job.cameo_consents:
        return None
    from cameo.services import lapsed_consents

    lapsed = {cameo_id for cameo_id, _version in lapsed_consents(user=job.user, uses=job.cameo_consents)}
    return next((entry for entry in job.cameo_consents if int(entry["cameo_id"]) in lapsed), None)


def end_generation(
    *, job_id: int, status: str, code: str, message: str, attempt: int | None = None
) -> Generation | None:
    """Ends a job in flight (failed, blocked or cancelled) unless it already ended; with `attempt`
    (a worker's call), only while that attempt runs it: a worker that stalled and lost the job to
    the reaper cannot end it, whether it waits in the queue again or another worker runs it."""
    with transaction.atomic():
        job = Generation.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in IN_FLIGHT or _taken_over(job, attempt):
            return job
        _finish(job, status, code=code, message=message)
    return job


def _taken_over(job: Generation, attempt: int | None) -> bool:
    """Whether `attempt` no longer runs the job: requeued or claimed again since (None: the caller
    is no worker)."""
    return attempt is not None and (job.status != GenerationStatus.RUNNING or job.attempts != attempt)


def complete_generation(
    *,
    job_id: int,
    video_path: str,
    model_id: str,
    attempt: int | None = None,
    fingerprints: Sequence = (),
    conditioning: dict[str, str] | None = None,
) -> Generation:
    """Stores the output as the requester's draft post, with provenance, fingerprints (the
    output's frame hashes, generation.fingerprints), appearances and licences, and notifies the
    requester and the cameo owners. Runs once per job: the job's row lock and its unique `post`
    make a retried or duplicated delivery a no-op, and with `attempt` only the worker running that
    attempt stores its output."""
    from social.services import create_post, notify

    with transaction.atomic():
        job = (
            Generation.objects.select_for_update(of=("self",))
            .select_related("user", "remix_of")
            .get(pk=job_id)
        )
        if job.post_id is not None or job.status != GenerationStatus.RUNNING or _taken_over(job, attempt):
            return job
        lapsed = consent_lapsed(job)
        if lapsed is not None:
            _finish(
                job,
                GenerationStatus.BLOCKED,
                code="consent_revoked",
                message=f"Consent for cameo {lapsed['cameo_id']} changed before the video was stored.",
            )
            return job
        cameo_refs = [
            {"id": str(entry["cameo_id"]), "owner_username": entry.get("owner_username", "")}
            for entry in job.cameo_consents
        ]
        post = create_post(
            author=job.user,
            video=video_path,
            prompt=job.prompt,
            caption=job.caption,
            status="draft",
            remix_of=job.remix_of,
            source_ids=job.source_ids,
            content_id=job.content_id,
            provider=settings.GENERATION_PROVIDER,
            cameo_owner_ids=[entry["owner_id"] for entry in job.cameo_consents],
            cameo_refs=cameo_refs,
        )
        if job.cameo_consents:
            from cameo.services import record_appearances

            record_appearances(post=post, uses=job.cameo_consents)
        if job.licences:
            _record_licences(post=post, licences=job.licences)
        from generation.provenance import build_record

        job.model_id = model_id
        Provenance.objects.create(
            post=post,
            generation=job,
            content_id=job.content_id,
            record=build_record(
                job=job,
                model_id=model_id,
                post_id=post.pk,
                conditioning=conditioning,
                has_audio=post.has_audio,
            ),
        )
        record_fingerprints(post_id=post.pk, fingerprints=fingerprints)
        job.post = post
        job.progress = 1.0
        job.save(update_fields=["model_id"])
        _finish(job, GenerationStatus.SUCCEEDED)
        notify(
            user=job.user,
            kind=NotificationKind.GENERATION_FINISHED,
            post=post,
            data={"generation_id": str(job.pk)},
        )
        for owner_id in {entry["owner_id"] for entry in job.cameo_consents}:
            if owner_id != job.user_id:
                notify(user=owner_id, kind=NotificationKind.CAMEO_APPEARANCE, actor=job.user, post=post)
    return job


def record_fingerprints(*, post_id: int, fingerprints: Sequence) -> int:
    """Stores a post's frame hashes (generation.fingerprints.FrameHash); frames it already has are
    skipped, so a retried store or a rerun backfill adds nothing. Returns how many were new."""
    stored = set(ContentFingerprint.objects.filter(post_id=post_id).values_list("at_ms", "region_pct"))
    rows = [
        ContentFingerprint(
            post_id=post_id,
            at_ms=item.at_ms,
            region_pct=item.region_pct,
            hash=item.bits,
            quality=item.quality,
        )
        for item in fingerprints
        if not item.mirrored and (item.at_ms, item.region_pct) not in stored
    ]
    # ignore_conflicts: a concurrent backfill of the same post may have written some meanwhile.
    ContentFingerprint.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _record_licences(*, post: Post, licences: list[dict]) -> None:
    from remix.ip import LicenceUse
    from remix.services import record_licences

    record_licences(post=post, uses=[LicenceUse.from_dict(entry) for entry in licences])


def _shots_wait_for_a_worker(job: Generation) -> bool:
    """Whether a running storyboard is quiet only because shots of it wait in the queue behind
    other work (its chord sent less than GENERATION_REDISPATCH_AFTER_S ago): no worker died."""
    if job.mode != GenerationMode.STORYBOARD or job.dispatched_at is None:
        return False
    recently = timezone.now() - dt.timedelta(seconds=settings.GENERATION_REDISPATCH_AFTER_S)
    waiting = job.shots.filter(status=GenerationStatus.QUEUED).exists()
    return waiting and job.dispatched_at > recently


def reap_stale_generations() -> list[int]:
    """Jobs left `running` by a worker that died: queued again (back in the outbox, and sent)
    while attempts remain, failed with `worker_lost` after that. Returns the ids it requeued."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.GENERATION_STALE_AFTER_S)
    requeued = []
    stale_ids = list(
        Generation.objects.filter(status=GenerationStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for job_id in stale_ids:
        with transaction.atomic():
            job = Generation.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None or job.status != GenerationStatus.RUNNING or not _is_stale(job, timezone.now()):
                continue
            if _shots_wait_for_a_worker(job):
                continue
            if job.attempts >= settings.GENERATION_MAX_ATTEMPTS:
                _finish(
                    job,
                    GenerationStatus.FAILED,
                    code="worker_lost",
                    message=f"The worker stopped during each of {job.attempts} attempts.",
                )
                continue
            job.status = GenerationStatus.QUEUED
            job.progress = job.progress if job.mode == GenerationMode.STORYBOARD else 0.0
            job.dispatched_at = None
            job.save(update_fields=["status", "progress", "dispatched_at"])
            if job.mode == GenerationMode.STORYBOARD:
                # Sent again: its rendered shots are kept; those its dead workers held wait again.
                job.shots.filter(status=GenerationStatus.RUNNING).update(
                    status=GenerationStatus.QUEUED, progress=0.0
                )
            requeued.append(job.pk)
    if requeued:
        dispatch_generations(job_ids=requeued)
    return requeued
