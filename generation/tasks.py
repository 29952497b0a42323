"""Celery tasks of the generation app: thin, take ids, idempotent.

`run_generation` runs on the `gpu` queue, `join_clips` (a stitch's posts or a storyboard's shots
joined into one video: nothing rendered) on the default one; a storyboard is a chord of
`render_shot` tasks (gpu) and `join_clips` (generation.storyboards). All acknowledge late, so a
worker that dies before finishing leaves the message to be delivered again; the job's own state (claimed with a heartbeat
and an attempt count) decides whether a delivery still has work to do. The job row, not the
message, is the source of truth: the periodic jobs (`manage.py run_periodic`, registered in
generation/apps.py) requeue jobs whose worker stopped reporting and send again those whose message
was never taken or may have been lost.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings

from core.tasks import RETRY_WHILE_THE_DATABASE_IS_AWAY
from generation import worker
from generation.backends import BackendError, get_renderer

logger = logging.getLogger(__name__)


@worker_process_init.connect
def load_models_at_worker_start(**_kwargs) -> None:
    """Each worker process that takes rendering jobs (the `gpu` queue) loads the video models once,
    when it starts, and keeps them; a worker of the other queues only (stitches, exports) does not."""
    if not settings.GENERATION_PRELOAD_MODELS or not consumes_gpu_queue():
        return
    try:
        get_renderer()
    except BackendError as exc:
        # Jobs taken by this process fail with the same code and message.
        logger.error("video models not loaded: %s", exc)


def consumes_gpu_queue() -> bool:
    """Whether this worker takes the `gpu` queue: the queues `-Q` chose, set on the app before
    the pool's processes fork (all of them without `-Q`)."""
    from celery import current_app

    return "gpu" in current_app.amqp.queues.consume_from


@shared_task(
    name="generation.tasks.run_generation",
    acks_late=True,
    ignore_result=True,
    **RETRY_WHILE_THE_DATABASE_IS_AWAY,
)
def run_generation(job_id: int) -> str | None:
    return _execute(job_id)


@shared_task(
    name="generation.tasks.join_clips",
    acks_late=True,
    ignore_result=True,
    **RETRY_WHILE_THE_DATABASE_IS_AWAY,
)
def join_clips(job_id: int) -> str | None:
    """A stitch, or a storyboard once its shots are rendered (before that it does nothing), joined
    on the default (CPU) queue: the same job lifecycle, with no model to load."""
    return _execute(job_id)


def _execute(job_id: int) -> str | None:
    job = worker.execute_generation(int(job_id))
    return None if job is None else job.status


@shared_task(
    name="generation.tasks.render_shot",
    acks_late=True,
    # A chord counts its shots' results.
    ignore_result=False,
    **RETRY_WHILE_THE_DATABASE_IS_AWAY,
)
def render_shot(shot_id: int) -> str | None:
    """One shot of a storyboard, on the gpu queue. A shot that fails ends its storyboard through
    the job's row, which the join reads (not the chord's results)."""
    shot = worker.execute_shot(int(shot_id))
    return None if shot is None else shot.status
