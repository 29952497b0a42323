"""Periodic jobs run once per interval however many schedulers run, and a failing job neither
stops the others nor the scheduler."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection

from core import periodic
from core.models import PeriodicRun


@pytest.fixture
def jobs(monkeypatch):
    """A registry of the test's own jobs, restored afterwards."""
    monkeypatch.setattr(periodic, "_jobs", {})
    return periodic


@pytest.mark.django_db
def test_a_job_runs_once_per_interval(jobs):
    runs = []
    jobs.register("count", every_s=3600, run=lambda: runs.append(1))
    assert jobs.run_due_jobs() == ["count"]
    assert jobs.run_due_jobs() == []
    assert runs == [1]
    row = PeriodicRun.objects.get(name="count")
    assert row.last_started_at is not None and row.last_finished_at is not None and row.last_error == ""


@pytest.mark.django_db
def test_a_failing_job_is_recorded_and_the_others_still_run(jobs):
    ran = []

    def broken():
        raise RuntimeError("disk full")

    jobs.register("broken", every_s=0, run=broken)
    jobs.register("fine", every_s=0, run=lambda: ran.append("fine"))
    assert jobs.run_due_jobs() == ["broken", "fine"]
    assert ran == ["fine"]
    assert PeriodicRun.objects.get(name="broken").last_error == "RuntimeError: disk full"


@pytest.mark.django_db(transaction=True)
def test_schedulers_started_together_run_each_job_once(jobs):
    runs = []
    lock = threading.Lock()

    def job():
        with lock:
            runs.append(threading.get_ident())

    jobs.register("once", every_s=3600, run=job)
    barrier = threading.Barrier(8)

    def scheduler():
        try:
            barrier.wait()
            return jobs.run_due_jobs()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        passes = list(pool.map(lambda _: scheduler(), range(8)))
    assert len(runs) == 1
    assert sorted(map(len, passes)) == [0] * 7 + [1]


@pytest.mark.django_db
def test_the_command_runs_the_registered_generation_jobs(capsys):
    call_command("run_periodic", "--once")
    assert "generation.reap_stale" in capsys.readouterr().out
    assert set(PeriodicRun.objects.values_list("name", flat=True)) >= {
        "generation.reap_stale",
        "generation.dispatch",
    }
