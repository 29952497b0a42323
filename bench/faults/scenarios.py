"""The faults (a worker killed, the broker hung or restarted empty, the database restarted under
traffic or while idle), each on a stack of its own under client traffic, and the checks after each.

A scenario: start the stack, warm it up (the first generation request loads the text model), start
the clients and the /health poller, inject the fault (recording the outage window), stop asking for
new videos, wait until every job the clients were answered is final (or the bound passes), stop the
clients, then check the database against what the clients were told.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from stack import FAULT_SETTINGS, Stack, read_text
from traffic import (
    PASSWORD,
    Api,
    Call,
    Client,
    HealthPoller,
    Ledger,
    Recorder,
    status_counts,
    unclean,
)

IN_FLIGHT = ("queued", "running")


@dataclass
class Spec:
    name: str
    description: str
    inject: Callable[[Context], None]
    settings: dict[str, str]
    workers: int = 2
    clients: int = 3
    submit_every_s: float = 3.0
    broker_outage: bool = False  # POST /generations must answer 202 during the outage
    final_bound_s: float = 150.0  # the longest a job may take from its 202 to a final state
    drain_s: float = 180.0  # the longest to wait for the last job after the fault


@dataclass
class Result:
    name: str
    requested: int = 0
    by_status: Counter = field(default_factory=Counter)
    max_final_s: float = 0.0
    outage_counts: Counter = field(default_factory=Counter)
    run_counts: Counter = field(default_factory=Counter)
    outage_posts_202: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logs: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Context:
    """What an `inject` function works with: the stack, the clock of the outage, the database."""

    stack: Stack
    spec: Spec
    submitting: threading.Event
    quiet: threading.Event
    windows: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    killed_jobs: list[int] = field(default_factory=list)
    after_drain: list[Callable[[], None]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def outage(self, start: float, end: float) -> None:
        self.windows.append((start, end))

    def note(self, text: str) -> None:
        print(f"  [{self.spec.name}] {text}", flush=True)
        self.notes.append(text)

    def query(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.stack.database_url(), connect_timeout=5, autocommit=True) as db:
            return db.execute(sql, params).fetchall()

    def wait_until(self, condition: Callable[[], object], *, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.3)
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")

    def job_counts(self) -> Counter:
        return Counter(dict(self.query("SELECT status, count(*) FROM generation_generation GROUP BY 1")))


# ---- the faults ------------------------------------------------------------------------------


def inject_worker_kills(ctx: Context, rounds: int = 6) -> None:
    """SIGKILL a worker in the middle of a render, `rounds` times: even rounds the pool process
    running the job (as the OOM killer would), odd rounds the whole worker (a lost machine), which
    is then replaced. A worker that cannot run jobs again after losing its pool process is a
    problem; it is replaced too, so that the rounds go on."""
    stale = int(ctx.stack.env["GENERATION_STALE_AFTER_S"])
    reap = int(ctx.stack.env["GENERATION_REAP_EVERY_S"])
    first = last = None
    for round_ in range(rounds):
        worker, pid, job_id, progress = ctx.wait_until(
            lambda: _a_render(ctx), timeout=120, what="a job in the middle of its render"
        )
        last = time.monotonic()
        first = first or last
        if round_ % 2 == 0:
            ctx.stack.kill_pool_process(worker, pid)
            what = f"pool process {pid} of worker {worker.name}"
        else:
            ctx.stack.kill_worker(worker)
            what = f"worker {worker.name} (all its processes; {ctx.stack.start_worker().name} started)"
        ctx.killed_jobs.append(job_id)
        ctx.note(f"kill {round_ + 1}: SIGKILL {what} while it rendered job {job_id} at {progress:.0%}")
        if round_ % 2 == 0:
            _replace_if_crash_looping(ctx, worker, killed_at=last)
        else:
            time.sleep(ctx.rng.uniform(2.0, 5.0))
    ctx.outage(first, last + stale + reap + 5)
    ctx.stack.wait_for_workers()


def _a_render(ctx: Context):
    """(worker, pool pid, job id, progress) of a job some worker is rendering now (its denoising
    loop reports 0-90% progress), or None."""
    for worker, pid, job_id in ctx.stack.active_jobs():
        rows = ctx.query(
            "SELECT progress FROM generation_generation WHERE id = %s AND status = 'running'", (job_id,)
        )
        if rows and 0.1 <= rows[0][0] <= 0.75:
            return worker, pid, job_id, rows[0][0]
    return None


UP_TIMEOUT = "Timed out waiting for UP message"


def _replace_if_crash_looping(ctx: Context, worker, *, killed_at: float) -> None:
    """Celery forks a new pool process after one dies; if the worker's log shows that process (and
    the next ones) killed for not starting in time, the worker will never run a job again."""
    before = read_text(worker.log).count(UP_TIMEOUT)
    time.sleep(15)
    after = read_text(worker.log).count(UP_TIMEOUT)
    if after > before:
        ctx.problems.append(
            f"worker {worker.name} ran no job after its pool process was killed: Celery killed "
            f"{after - before} replacement pool processes in {time.monotonic() - killed_at:.0f} s "
            f"('{UP_TIMEOUT}'); replaced by a new worker"
        )
        ctx.stack.kill_worker(worker)
        ctx.note(f"worker {worker.name} crash-loops; replaced by {ctx.stack.start_worker().name}")


def inject_broker_pause(ctx: Context, pause_s: float = 20.0) -> None:
    """SIGSTOP redis-server for `pause_s`, then SIGCONT: a broker that hangs rather than refuses."""
    time.sleep(8)
    # Jobs that finish during the pause: their workers acknowledge the messages to a hung broker.
    ctx.wait_until(
        lambda: ctx.query("SELECT 1 FROM generation_generation WHERE status = 'running' AND progress >= 0.3"),
        timeout=60,
        what="a job half rendered",
    )
    start = time.monotonic()
    ctx.stack.pause_redis()
    ctx.note(f"redis-server SIGSTOP with {dict(ctx.job_counts())}")
    time.sleep(pause_s)
    ctx.stack.resume_redis()
    end = time.monotonic()
    ctx.note(f"redis-server SIGCONT after {end - start:.1f} s; jobs {dict(ctx.job_counts())}")
    ctx.outage(start, end + 5)
    time.sleep(15)


def inject_broker_restart(ctx: Context, down_s: float = 3.0) -> None:
    """Kill redis-server while jobs are queued in it and running, start an empty one on the same
    port after `down_s`: every message it held is gone."""
    ctx.wait_until(
        lambda: (c := ctx.job_counts())["running"] >= 1 and c["queued"] >= 4,
        timeout=90,
        what="running jobs and a queue",
    )
    start = time.monotonic()
    ctx.stack.kill_redis()
    ctx.note(f"redis-server SIGKILL with {dict(ctx.job_counts())}")
    time.sleep(down_s)
    ctx.stack.start_empty_redis()
    end = time.monotonic()
    ctx.note(f"empty redis-server on the same port after {end - start:.1f} s; jobs {dict(ctx.job_counts())}")
    redispatch = int(ctx.stack.env["GENERATION_REDISPATCH_AFTER_S"])
    ctx.outage(start, end + 5)
    time.sleep(redispatch + 10)


def inject_database_restart(ctx: Context, down_s: float = 10.0) -> None:
    """Stop PostgreSQL (fast shutdown: connections cut) while jobs run and others are queued, start
    it again on the same socket after `down_s`."""
    ctx.wait_until(
        lambda: (c := ctx.job_counts())["running"] >= 1 and c["queued"] >= 3,
        timeout=90,
        what="running jobs and a queue",
    )
    queued = [row[0] for row in ctx.query("SELECT id FROM generation_generation WHERE status = 'queued'")]
    counts = dict(ctx.job_counts())
    start = time.monotonic()
    ctx.stack.stop_postgres()
    ctx.note(f"PostgreSQL stopped (fast) with {counts}")
    time.sleep(down_s)
    ctx.stack.start_postgres()
    end = time.monotonic()
    back_at = ctx.query("SELECT now()")[0][0]
    ctx.note(f"PostgreSQL started again after {end - start:.1f} s; jobs {dict(ctx.job_counts())}")
    ctx.outage(start, end + 5)
    time.sleep(20)

    def report_waits() -> None:
        # A queued job's message taken by a worker while the database was down is gone with the
        # task's failure; the job then waits for the outbox to send it again.
        waits = ctx.query(
            "SELECT id, extract(epoch from started_at - %s) FROM generation_generation "
            "WHERE id = ANY(%s) ORDER BY id",
            (back_at, queued),
        )
        ctx.note(
            "jobs queued when the database stopped, seconds from its return to their start: "
            + ", ".join(f"{job_id}: {'-' if wait is None else f'{wait:.1f}'}" for job_id, wait in waits)
            + f" (GENERATION_REDISPATCH_AFTER_S={ctx.stack.env['GENERATION_REDISPATCH_AFTER_S']})"
        )

    ctx.after_drain.append(report_waits)


def inject_idle_database_restart(ctx: Context, down_s: float = 3.0) -> None:
    """Restart PostgreSQL while no request comes in (a maintenance window, a failover at night);
    the first requests after it must be answered as any other. With persistent connections
    (`--server granian`: DB_CONN_MAX_AGE=60) the restart is timed to fall inside the life of a
    connection a server process keeps."""
    ctx.wait_until(lambda: ctx.job_counts()["succeeded"] >= 6, timeout=90, what="a few finished jobs")
    kept = _wait_for_a_young_persistent_connection(ctx)
    ctx.quiet.set()
    time.sleep(3)  # calls in flight are answered
    ctx.stack.stop_postgres()
    time.sleep(down_s)
    ctx.stack.start_postgres()
    ctx.note(
        f"PostgreSQL restarted ({down_s:g} s down) while the clients were quiet; "
        + (f"a server connection was {kept:.0f} s old before it" if kept else "no server kept a connection")
    )
    time.sleep(1)
    start = time.monotonic()
    ctx.quiet.clear()
    ctx.outage(start, start + 10)  # the first answers after the restart
    time.sleep(20)


def _wait_for_a_young_persistent_connection(ctx: Context, timeout: float = 70) -> float | None:
    """The age of a database connection held open between requests (one 8-40 s old: workers' and
    the periodic runner's connections live for one task or pass), once there is one; None if none
    shows up (a server without persistent connections)."""
    sql = (
        "SELECT extract(epoch from now() - backend_start) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = 'idle'"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ages = [float(age) for (age,) in ctx.query(sql) if 8 <= float(age) <= 40]
        if ages:
            return max(ages)
        time.sleep(0.5)
    return None


SCENARIOS = {
    spec.name: spec
    for spec in [
        Spec(
            "worker-kill",
            "a worker SIGKILLed mid-render, 6 times",
            inject_worker_kills,
            settings={"GENERATION_STEPS": "200"},
            submit_every_s=10.0,
        ),
        Spec(
            "broker-pause",
            "redis-server SIGSTOPped for 20 s, then SIGCONT",
            inject_broker_pause,
            settings={"GENERATION_STEPS": "40"},
            broker_outage=True,
        ),
        Spec(
            "broker-restart",
            "redis-server killed and started empty on its port",
            inject_broker_restart,
            settings={"GENERATION_STEPS": "40"},
            submit_every_s=1.5,
            broker_outage=True,
        ),
        Spec(
            "db-restart",
            "PostgreSQL stopped for 10 s and started again",
            inject_database_restart,
            # Longer than the outage: a job whose message was taken while the database was down
            # shows how long it waits for the outbox.
            settings={"GENERATION_STEPS": "40", "GENERATION_REDISPATCH_AFTER_S": "60"},
            submit_every_s=1.5,
        ),
        Spec(
            "db-restart-idle",
            "PostgreSQL restarted while no request came in; then traffic again",
            inject_idle_database_restart,
            settings={"GENERATION_STEPS": "40"},
        ),
    ]
}


# ---- running one -----------------------------------------------------------------------------


def run(spec: Spec, *, tiny_cache: Path, keep: bool, server: str = "make-run") -> Result:
    result = Result(spec.name)
    stack = Stack.create(settings=spec.settings, workers=spec.workers, server=server)
    print(f"== {spec.name}: {spec.description}; {server} (stack in {stack.root})", flush=True)
    try:
        began = time.monotonic()
        stack.start(tiny_cache)
        print(f"  [{spec.name}] stack up in {time.monotonic() - began:.0f} s; warming up", flush=True)
        result.notes.append(f"server: {stack.server_line}")
        warm_up(stack, result)
        _run_traffic(spec, stack, result)
        check_database(stack, result)
        result.problems += [f"process died: {name}" for name in stack.process_deaths()]
    except Exception as exc:  # noqa: BLE001 - a scenario that breaks is reported, the others run
        result.problems.append(f"scenario aborted: {type(exc).__name__}: {exc}")
    finally:
        keep_it = keep or not result.ok
        result.logs = str(stack.logs) if keep_it else ""
        stack.stop(keep=keep_it)
    return result


def warm_up(stack: Stack, result: Result, requests: int = 4, rounds: int = 8) -> None:
    """Videos end to end, outside the measured traffic: each server process loads the text model on
    its first generation request, so rounds of a few requests at once are sent until two rounds
    in a row are answered quickly (every process is warm, most likely). During the first round one
    GET /health measures whether the server still answers."""
    api = Api(stack.base_url, Recorder(), timeout_s=180)
    credentials = {"username": "warmup", "password": PASSWORD}
    api.call("POST", "/auth/register", route="", body=credentials | {"birth_date": "1990-01-01"})
    _, tokens = api.call("POST", "/auth/token", route="", body=credentials)
    token = tokens["access"]
    jobs, fast_rounds = [], 0
    for round_ in range(rounds):
        answers, health = _warm_up_round(api, token, requests, first=round_ == 0, serial=len(jobs))
        jobs += [job for _s, _status, job in answers]
        slowest = max(seconds for seconds, _status, _job in answers)
        if round_ == 0:
            result.notes.append(
                f"first POST /generations after the server started took up to {slowest:.1f} s; a GET "
                f"/health sent 1 s into it took {health[0]:.1f} s ({health[1]})"
            )
        fast_rounds = fast_rounds + 1 if slowest < 5 else 0
        if fast_rounds == 2:
            break
    _wait_until_final(api, token, jobs)


def _warm_up_round(api: Api, token: str, requests: int, *, first: bool, serial: int):
    answers: list[tuple[float, object, object]] = []

    def ask(index: int) -> None:
        began = time.monotonic()
        status, job = api.call(
            "POST",
            "/generations",
            route="",
            body={"prompt": f"warming up {index}", "duration_s": 2, "aspect_ratio": "9:16"},
            token=token,
            headers={"Idempotency-Key": f"warm-up-{index}"},
        )
        answers.append((time.monotonic() - began, status, job))

    threads = [threading.Thread(target=ask, args=(serial + i,), daemon=True) for i in range(requests)]
    for thread in threads:
        thread.start()
    health = (0.0, "")
    if first:
        time.sleep(1.0)  # the generation requests are being served by then
        began = time.monotonic()
        status, _ = api.call("GET", "/health", route="")
        health = (time.monotonic() - began, status)
    for thread in threads:
        thread.join(timeout=200)
    refused = [(status, job) for _s, status, job in answers if status != 202]
    if refused or len(answers) < requests:
        raise RuntimeError(f"warm-up generation requests answered {refused or 'nothing'}")
    return answers, health


def _wait_until_final(api: Api, token: str, jobs: list, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        while time.monotonic() < deadline:
            _, job = api.call("GET", f"/generations/{job['id']}", route="", token=token)
            if job["status"] not in IN_FLIGHT:
                break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"the warm-up jobs did not finish within {timeout:g} s")


def _run_traffic(spec: Spec, stack: Stack, result: Result) -> None:
    recorder, ledger = Recorder(), Ledger()
    api = Api(stack.base_url, recorder)
    submitting, stopping, quiet = threading.Event(), threading.Event(), threading.Event()
    submitting.set()
    clients = [
        Client(
            api,
            ledger,
            name=f"{spec.name.replace('-', '')[:12]}{index}",
            submitting=submitting,
            stopping=stopping,
            quiet=quiet,
            submit_every_s=spec.submit_every_s,
        )
        for index in range(spec.clients)
    ]
    poller = HealthPoller(api, stopping, quiet)
    for thread in [*clients, poller]:
        thread.start()
    ctx = Context(stack=stack, spec=spec, submitting=submitting, quiet=quiet)
    try:
        spec.inject(ctx)
    finally:
        submitting.clear()
        _drain(spec, clients, ledger, result)
        for report in ctx.after_drain:
            report()
        result.notes += ctx.notes
        result.problems += ctx.problems
        stopping.set()
        for thread in [*clients, poller]:
            thread.join(timeout=30)
    _judge_answers(spec, ctx, recorder, poller, result)
    for client in clients:
        result.problems += client.errors
    result.requested = len(ledger.job_ids())
    _check_ledger(spec, stack, ledger, result)
    _check_killed_jobs(stack, ctx.killed_jobs, result)
    result.notes.append(worker_log_summary(stack))
    result.problems += workers_that_stopped_consuming(stack)


def _drain(spec: Spec, clients: list[Client], ledger: Ledger, result: Result) -> None:
    """Waits (clients still polling) until every job a client was answered is final."""
    deadline = time.monotonic() + spec.drain_s
    while time.monotonic() < deadline:
        if all(not c.open_jobs and not c.unanswered_keys for c in clients):
            return
        time.sleep(1)
    open_jobs = sorted(j for c in clients for j in c.open_jobs)
    unanswered = [k for c in clients for k in c.unanswered_keys]
    if open_jobs:
        result.problems.append(f"stuck: jobs {open_jobs} not final {spec.drain_s:g} s after the fault")
    if unanswered:
        result.problems.append(f"{len(unanswered)} generation requests never answered 202 (keys retried)")


def _judge_answers(
    spec: Spec, ctx: Context, recorder: Recorder, poller: HealthPoller, result: Result
) -> None:
    outage_calls: list[Call] = []
    for start, end in ctx.windows:
        outage_calls += recorder.between(start, end)
    result.outage_counts = status_counts(outage_calls)
    result.run_counts = status_counts(recorder.calls)
    bad = unclean(recorder.calls)
    if bad:
        worst = Counter(f"{c.route} -> {c.status}" for c in bad)
        in_outage = sum(1 for c in bad if c in outage_calls)
        result.problems.append(
            f"{len(bad)} unclean answers ({in_outage} during the outage): {dict(worst.most_common(8))}"
        )
        recovered = max((end for _start, end in ctx.windows), default=float("inf"))
        late = [c for c in bad if c.started > recovered]
        if late:
            result.problems.append(
                f"{len(late)} unclean answers after the outage window had ended: "
                f"{dict(Counter(f'{c.route} -> {c.status}' for c in late).most_common(5))}"
            )
    slowest = max(recorder.calls, key=lambda c: c.ended - c.started, default=None)
    if slowest is not None:
        result.notes.append(
            f"slowest call: {slowest.route} {slowest.ended - slowest.started:.1f} s -> {slowest.status}"
        )
    if spec.broker_outage:
        posts = [c for c in outage_calls if c.route == "POST /generations"]
        result.outage_posts_202 = sum(1 for c in posts if c.status == 202)
        refused = Counter(str(c.status) for c in posts if c.status != 202)
        if not posts:
            result.problems.append("no POST /generations during the broker outage")
        elif refused:
            result.problems.append(f"POST /generations during the broker outage answered {dict(refused)}")
    health = Counter()
    for when, status, body_status, down in poller.answers:
        if any(start <= when <= end for start, end in ctx.windows):
            health[f"{status} {body_status} {','.join(down)}".strip()] += 1
    result.notes.append(f"/health during the outage: {dict(health)}")


def _check_ledger(spec: Spec, stack: Stack, ledger: Ledger, result: Result) -> None:
    for (username, key), ids in ledger.keys_with_two_ids().items():
        result.problems.append(f"duplicate: {username}'s key {key[:8]} was answered with jobs {sorted(ids)}")
    ids = sorted(ledger.job_ids())
    with psycopg.connect(stack.database_url(), connect_timeout=5, autocommit=True) as db:
        rows = db.execute(
            "SELECT id, status, error_code, attempts, post_id, "
            "extract(epoch from finished_at - created_at) FROM generation_generation WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
    found = {row[0]: row for row in rows}
    unknown = db_ids_of_users(stack, sorted({username for username, _key in ledger.ids_by_key})) - set(ids)
    if unknown:
        result.problems.append(f"jobs {sorted(unknown)} were made but no client was answered their id")
    lost = [job_id for job_id in ids if job_id not in found]
    if lost:
        result.problems.append(f"lost: jobs {lost} were answered 202 but have no row")
    result.by_status = Counter(row[1] for row in rows)
    durations = [row[5] for row in rows if row[5] is not None]
    result.max_final_s = float(max(durations, default=0.0))
    if result.max_final_s > spec.final_bound_s:
        result.problems.append(f"a job took {result.max_final_s:.0f} s to reach a final state")
    failures = Counter(f"{row[1]}:{row[2]}" for row in rows if row[1] not in ("succeeded", *IN_FLIGHT))
    attempts = Counter(row[3] for row in rows)
    result.notes.append(f"attempts per job: {dict(sorted(attempts.items()))}; failures: {dict(failures)}")


def db_ids_of_users(stack: Stack, usernames: list[str]) -> set[int]:
    with psycopg.connect(stack.database_url(), connect_timeout=5, autocommit=True) as db:
        rows = db.execute(
            "SELECT g.id FROM generation_generation g JOIN social_user u ON u.id = g.user_id "
            "WHERE u.username = ANY(%s)",
            (usernames,),
        ).fetchall()
    return {row[0] for row in rows}


def _check_killed_jobs(stack: Stack, job_ids: list[int], result: Result) -> None:
    """A job whose worker was killed must have been run again (or failed `worker_lost`)."""
    if not job_ids:
        return
    with psycopg.connect(stack.database_url(), connect_timeout=5, autocommit=True) as db:
        rows = db.execute(
            "SELECT id, status, attempts, error_code FROM generation_generation WHERE id = ANY(%s) ORDER BY id",
            (job_ids,),
        ).fetchall()
    result.notes.append("killed jobs (id, status, attempts, error): " + ", ".join(map(str, rows)))
    for job_id, status, attempts, error_code in rows:
        if not (attempts >= 2 or error_code == "worker_lost"):
            result.problems.append(f"job {job_id} was killed mid-render yet ran once: {status}, {attempts}")


TASK_LINE = re.compile(
    r"Task generation\.tasks\.run_generation\[[^]]+\] (succeeded in [0-9.]+s: (\S+)|raised unexpected: (\w+))"
)


def worker_log_summary(stack: Stack) -> str:
    """What the workers' logs say about every delivery of a job's message."""
    outcomes: Counter = Counter()
    up_timeouts = failed_acks = 0
    for log in sorted(stack.logs.glob("worker-*.log")):
        text = read_text(log)
        up_timeouts += text.count(UP_TIMEOUT)
        failed_acks += text.count("Couldn't ack")
        for match in TASK_LINE.finditer(text):
            if match.group(3):
                outcomes[f"raised {match.group(3)}"] += 1
            elif match.group(2) == "None":
                outcomes["nothing to do (job final or claimed)"] += 1
            else:
                outcomes[f"ran: {match.group(2).strip(chr(39))}"] += 1
    summary = f"task deliveries: {dict(outcomes)}"
    if up_timeouts:
        summary += f"; pool processes killed by Celery for not starting in time: {up_timeouts}"
    if failed_acks:
        summary += f"; acknowledgements that failed ('Couldn't ack'): {failed_acks}"
    return summary


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ", re.MULTILINE)


def _times_of(text: str, needle: str) -> list[str]:
    """The timestamps of the log lines that contain `needle` (they sort as text)."""
    times = []
    for line in text.splitlines():
        if needle in line and (match := LOG_TIME.match(line)):
            times.append(match.group(1))
    return times


def workers_that_stopped_consuming(stack: Stack, quiet_s: float = 30.0) -> list[str]:
    """A worker whose acknowledgement failed and that received no message in the `quiet_s` or
    more the run went on after it (with jobs to run: the other workers' deliveries are counted)."""
    texts = {
        log.stem.removeprefix("worker-"): read_text(log) for log in sorted(stack.logs.glob("worker-*.log"))
    }
    stamps = [_parse(m.group(1)) for text in texts.values() for m in LOG_TIME.finditer(text)]
    last_line = max(stamps, default=None)
    problems = []
    for name, text in texts.items():
        failures = _times_of(text, "Couldn't ack")
        if not failures or (last_line - _parse(failures[-1])).total_seconds() < quiet_s:
            continue
        after = failures[-1]
        if any(t > after for t in _times_of(text, "] received")):
            continue
        elsewhere = sum(
            1
            for other, body in texts.items()
            if other != name
            for t in _times_of(body, "succeeded in")
            if t > after
        )
        problems.append(
            f"worker {name} received no message in the {(last_line - _parse(after)).total_seconds():.0f} s "
            f'after its acknowledgement failed ("Couldn\'t ack" at {after[11:]}); other workers ran '
            f"{elsewhere} deliveries meanwhile"
        )
    return problems


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def check_database(stack: Stack, result: Result) -> None:
    """Whatever the clients knew: no job left in flight, at most one post per job and none without
    its job, no two jobs for one (user, key), every succeeded job with its post."""
    checks = {
        "jobs still queued or running": "SELECT id, status FROM generation_generation "
        "WHERE status IN ('queued', 'running')",
        "two jobs for one idempotency key": "SELECT user_id, idempotency_key, array_agg(id) "
        "FROM generation_generation WHERE idempotency_key <> '' GROUP BY 1, 2 HAVING count(*) > 1",
        "posts of a generated video without its job": "SELECT p.id FROM social_post p "
        "LEFT JOIN generation_generation g ON g.post_id = p.id WHERE g.id IS NULL",
        "posts with the same content id": "SELECT content_id, count(*) FROM social_post "
        "WHERE content_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1",
        "succeeded jobs without a post": "SELECT id FROM generation_generation "
        "WHERE status = 'succeeded' AND post_id IS NULL",
        "provenance records of one job": "SELECT generation_id, count(*) FROM generation_provenance "
        "GROUP BY 1 HAVING count(*) > 1",
    }
    with psycopg.connect(stack.database_url(), connect_timeout=5, autocommit=True) as db:
        for what, sql in checks.items():
            rows = db.execute(sql).fetchall()
            if rows:
                result.problems.append(f"{what}: {rows[:10]}")


def settings_line() -> str:
    return ", ".join(f"{name}={value}" for name, value in FAULT_SETTINGS.items())
