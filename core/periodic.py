"""Periodic work (reaping dead jobs, re-sending lost ones, ...) run once per interval however many
schedulers run.

Apps register their jobs from `AppConfig.ready` (`register("name", every_s=60, run=fn)`; core
imports no app). `run_due_jobs` is one scheduler pass: for each job it locks the job's
`PeriodicRun` row with SKIP LOCKED (a second scheduler skips a job the first is claiming), starts
it only when its interval has passed since it last started, and records the start before running
it, so two schedulers started by mistake never run a job twice in one interval. A job that raises
is logged and recorded; the others still run. `manage.py run_periodic` loops over passes; `make
run` starts one, and production runs one (or, harmlessly, more).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every_s: float
    run: Callable[[], object]


_jobs: dict[str, PeriodicJob] = {}


def register(name: str, *, every_s: float, run: Callable[[], object]) -> None:
    """Adds (or replaces) the job `name`, run at most once every `every_s` seconds."""
    _jobs[name] = PeriodicJob(name=name, every_s=float(every_s), run=run)


def registered_jobs() -> list[PeriodicJob]:
    return list(_jobs.values())


def _claim(job: PeriodicJob) -> bool:
    """Whether this scheduler starts `job` now; records the start if so."""
    from core.models import PeriodicRun

    PeriodicRun.objects.bulk_create([PeriodicRun(name=job.name)], ignore_conflicts=True)
    with transaction.atomic():
        row = PeriodicRun.objects.select_for_update(skip_locked=True).filter(name=job.name).first()
        now = timezone.now()
        if row is None:  # another scheduler is claiming it right now
            return False
        if row.last_started_at is not None and now - row.last_started_at < dt.timedelta(seconds=job.every_s):
            return False
        row.last_started_at = now
        row.save(update_fields=["last_started_at"])
    return True


def _finished(job: PeriodicJob, error: str = "") -> None:
    from core.models import PeriodicRun

    PeriodicRun.objects.filter(name=job.name).update(last_finished_at=timezone.now(), last_error=error[:500])


def run_due_jobs() -> list[str]:
    """One scheduler pass: runs every job whose interval has passed; returns their names."""
    ran = []
    for job in registered_jobs():
        if not _claim(job):
            continue
        ran.append(job.name)
        try:
            job.run()
        except Exception as exc:
            logger.exception("periodic job %s failed", job.name)
            _finished(job, f"{type(exc).__name__}: {exc}")
        else:
            _finished(job)
    return ran
