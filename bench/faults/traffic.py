"""Clients of the API over HTTP, recording every answer: users who sign up, ask for videos with an
Idempotency-Key (retrying a key until it is answered, and now and then repeating an answered one),
follow their jobs and read the feed; and a poller of /health.

A call that gets no answer within CLIENT_TIMEOUT_S is a `timeout`; one the server refuses to
connect is `refused`. Every call is recorded with its start and end, so a scenario can count the
answers given while its fault lasted.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

CLIENT_TIMEOUT_S = 10.0
FINAL = {"succeeded", "failed", "blocked", "cancelled"}
PASSWORD = "fault-run-password-42"


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    method: str
    route: str  # the path with ids replaced, e.g. GET /generations/{id}
    status: int | str  # an HTTP status, or "timeout" / "refused" / "broken"


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def between(self, start: float, end: float) -> list[Call]:
        """Calls that were in flight at some moment of [start, end]."""
        with self._lock:
            return [c for c in self.calls if c.started <= end and c.ended >= start]


def status_counts(calls: list[Call]) -> Counter:
    counts: Counter = Counter()
    for call in calls:
        status = call.status
        counts[
            f"{status // 100}xx" if isinstance(status, int) and status not in (500, 503) else str(status)
        ] += 1
    return counts


def unclean(calls: list[Call]) -> list[Call]:
    """Answers a client must never get: a 5xx other than 503, no answer in time, a refused connection."""
    return [c for c in calls if not (isinstance(c.status, int) and (c.status < 500 or c.status == 503))]


class Api:
    def __init__(self, base_url: str, recorder: Recorder, *, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.recorder = recorder
        self.timeout_s = timeout_s

    def call(
        self, method: str, path: str, *, route: str, body=None, token: str = "", headers=None
    ) -> tuple[int | str, object]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request(method, "/api/v1" + path, body=data, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            status: int | str = response.status
        except TimeoutError:
            status, raw = "timeout", b""
        except ConnectionRefusedError:
            status, raw = "refused", b""
        except (ConnectionError, http.client.HTTPException):
            status, raw = "broken", b""
        finally:
            connection.close()
        self.recorder.add(Call(started, time.monotonic(), method, route, status))
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return status, payload


@dataclass
class Ledger:
    """What the clients were told: every id answered for each (user, Idempotency-Key)."""

    ids_by_key: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    final_seen: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (status, when)
    accepted_at: dict[int, float] = field(default_factory=dict)  # id -> first 202
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, username: str, key: str, job_id: int) -> None:
        with self.lock:
            self.ids_by_key.setdefault((username, key), set()).add(job_id)
            self.accepted_at.setdefault(job_id, time.monotonic())

    def finished(self, job_id: int, status: str) -> None:
        with self.lock:
            self.final_seen.setdefault(job_id, (status, time.monotonic()))

    def job_ids(self) -> set[int]:
        with self.lock:
            return {job_id for ids in self.ids_by_key.values() for job_id in ids}

    def keys_with_two_ids(self) -> dict:
        with self.lock:
            return {key: ids for key, ids in self.ids_by_key.items() if len(ids) > 1}


class Client(threading.Thread):
    """One user: signs up and in (retrying through outages), then asks for videos while
    `submitting` is set, follows its jobs and reads the feed until `stopping` is set; sends nothing
    while `quiet` is set."""

    def __init__(
        self,
        api: Api,
        ledger: Ledger,
        *,
        name: str,
        submitting: threading.Event,
        stopping: threading.Event,
        quiet: threading.Event,
        submit_every_s: float,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.api, self.ledger = api, ledger
        self.username = name
        self.submitting, self.stopping, self.quiet = submitting, stopping, quiet
        self.submit_every_s = submit_every_s
        self.token = ""
        self.unanswered_keys: list[str] = []  # keys whose POST got no 202 yet: sent again
        self.answered_keys: list[str] = []
        self.open_jobs: set[int] = set()
        self.rng = random.Random(name)
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            self._sign_up_and_in()
            next_submit = time.monotonic()
            while not self.stopping.is_set():
                if self.quiet.is_set():
                    self.stopping.wait(0.1)
                    continue
                now = time.monotonic()
                if self.unanswered_keys:
                    self._submit(self.unanswered_keys[0])
                elif self.submitting.is_set() and now >= next_submit:
                    next_submit = now + self.submit_every_s * self.rng.uniform(0.6, 1.4)
                    if self.answered_keys and self.rng.random() < 0.2:
                        self._submit(self.rng.choice(self.answered_keys))  # a client's retry
                    else:
                        self._submit(uuid.uuid4().hex)
                self._follow_a_job()
                if self.rng.random() < 0.4:
                    tab = self.rng.choice(["for_you", "following"])
                    self.api.call("GET", f"/feed?tab={tab}&limit=10", route="GET /feed", token=self.token)
                self.stopping.wait(self.rng.uniform(0.2, 0.5))
        except Exception as exc:  # noqa: BLE001 - reported with the scenario's results
            self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")

    def _sign_up_and_in(self) -> None:
        body = {"username": self.username, "password": PASSWORD, "birth_date": "1990-01-01"}
        while not self.stopping.is_set():
            status, _ = self.api.call("POST", "/auth/register", route="POST /auth/register", body=body)
            # 400: a retry after a registration whose answer was lost finds the name taken.
            if status in (201, 400):
                break
            self.stopping.wait(1)
        while not self.stopping.is_set():
            status, payload = self.api.call(
                "POST",
                "/auth/token",
                route="POST /auth/token",
                body={"username": self.username, "password": PASSWORD},
            )
            if status == 200:
                self.token = payload["access"]
                return
            self.stopping.wait(1)

    def _submit(self, key: str) -> None:
        prompt = f"{self.username} asks for a lighthouse in a storm, take {key[:8]}"
        status, payload = self.api.call(
            "POST",
            "/generations",
            route="POST /generations",
            body={"prompt": prompt, "duration_s": 2, "aspect_ratio": "9:16"},
            token=self.token,
            headers={"Idempotency-Key": key},
        )
        if status == 202:
            job_id = int(payload["id"])
            self.ledger.accepted(self.username, key, job_id)
            if key in self.unanswered_keys:
                self.unanswered_keys.remove(key)
            if key not in self.answered_keys:
                self.answered_keys.append(key)
            if payload["status"] in FINAL:
                self.ledger.finished(job_id, payload["status"])
            else:
                self.open_jobs.add(job_id)
        elif key not in self.unanswered_keys and key not in self.answered_keys:
            # No answer we can trust (5xx, timeout, 429): the same key again, as a client should.
            self.unanswered_keys.append(key)
            self.stopping.wait(0.5)
        elif key in self.unanswered_keys:
            self.stopping.wait(0.5)

    def _follow_a_job(self) -> None:
        if not self.open_jobs:
            return
        job_id = self.rng.choice(sorted(self.open_jobs))
        status, payload = self.api.call(
            "GET", f"/generations/{job_id}", route="GET /generations/{id}", token=self.token
        )
        if status == 200 and payload["status"] in FINAL:
            self.open_jobs.discard(job_id)
            self.ledger.finished(job_id, payload["status"])
        elif status == 404:
            self.errors.append(f"{self.name}: job {job_id} answered 202 earlier, now 404")
            self.open_jobs.discard(job_id)

    def follow_all(self) -> None:
        """Polls every open job once (the drain phase)."""
        for job_id in sorted(self.open_jobs):
            status, payload = self.api.call(
                "GET", f"/generations/{job_id}", route="GET /generations/{id}", token=self.token
            )
            if status == 200 and payload["status"] in FINAL:
                self.open_jobs.discard(job_id)
                self.ledger.finished(job_id, payload["status"])


class HealthPoller(threading.Thread):
    """GET /health every `every_s`; keeps (time, HTTP status, body status, down list)."""

    def __init__(
        self, api: Api, stopping: threading.Event, quiet: threading.Event, every_s: float = 1.0
    ) -> None:
        super().__init__(name="health", daemon=True)
        self.api, self.stopping, self.quiet, self.every_s = api, stopping, quiet, every_s
        self.answers: list[tuple[float, int | str, str, tuple]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.quiet.is_set():
                self.stopping.wait(0.1)
                continue
            started = time.monotonic()
            status, payload = self.api.call("GET", "/health", route="GET /health")
            body = payload if isinstance(payload, dict) else {}
            self.answers.append((started, status, body.get("status", ""), tuple(body.get("down", ()))))
            self.stopping.wait(max(0.0, self.every_s - (time.monotonic() - started)))
