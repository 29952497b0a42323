"""The generation part of the demo that `make run` loads: sample posts made through the real job
path (request, moderation, quota, render with the configured backend, labels, watermark, storage,
provenance, draft post), run in this process, then published. Every post has sound. A remix
chain of three (alice's post, bob's remix, carol's continuation) gives the remix demo its lineage,
and carol stitches it into one video; alice lays out a three-shot storyboard; once the cameo demo has
run, bob's post shows two cameos together (alice's, named by id, and his cat `@chelsea`, mentioned),
each conditioning the video. Idempotent: each job has a fixed idempotency key, and a finished job
is not run again.
"""

from __future__ import annotations

from cameo.demo import DEMO_PET_HANDLE
from cameo.models import Cameo, CameoKind, CameoStatus
from generation import services, worker
from generation.models import Generation, GenerationMode, GenerationStatus
from generation.storyboards import ShotRequest
from social.models import Post, PostStatus, User

DEMO_JOBS = [
    ("alice", "demo-sunrise", "a paper boat sailing at sunrise on a calm lake", None, None),
    ("bob", "demo-city", "neon city street in the rain, seen from a tram window", None, None),
    ("carol", "demo-garden", "a hummingbird visiting red flowers in slow motion", None, None),
    ("bob", "demo-sunrise-remix", "the boat drifts into a storm", "demo-sunrise", "remix"),
    (
        "carol",
        "demo-sunrise-continue",
        "the storm clears and dolphins follow the boat",
        "demo-sunrise-remix",
        "continue",
    ),
]
# The story relay as one video: carol stitches the three posts of the chain.
STITCH_JOB = (
    "carol",
    "demo-sunrise-relay",
    ["demo-sunrise", "demo-sunrise-remix", "demo-sunrise-continue"],
    "The whole sunrise relay, start to finish",
)
# A storyboard: three shots rendered apart and joined into one video.
STORYBOARD_JOB = (
    "alice",
    "demo-storyboard",
    [
        ("a lighthouse on a cliff at dusk, waves below", 2),
        ("the keeper climbs the spiral stairs with a lantern", 2),
        ("the great lamp turns on and sweeps across the stormy sea", 2),
    ],
)
# Two cameos in one video: bob names alice's cameo (mutuals: they follow each other) and mentions
# his cat; made only when the cameo demo has enrolled both.
TWO_CAMEOS_JOB = (
    "bob",
    "demo-two-cameos",
    f"@{DEMO_PET_HANDLE} naps on the sofa next to a friend, afternoon sun",
)


def _publish(job: Generation) -> Post | None:
    from social.services import publish_post

    if job.post_id is None:
        return None
    post = Post.objects.get(pk=job.post_id)
    if post.status == PostStatus.DRAFT:
        post = publish_post(actor=job.user, post=post)
    return post


def seed_generation_demo(users: dict[str, User] | None = None) -> list[Post]:
    users = users or {
        user.username: user for user in User.objects.filter(username__in=["alice", "bob", "carol"])
    }
    jobs: dict[str, Generation] = {}
    posts = []
    for username, key, prompt, source_key, mode in DEMO_JOBS:
        source = jobs.get(source_key) if source_key else None
        if source_key and (source is None or source.post_id is None):
            continue
        request = services.GenerationRequest(
            prompt=prompt,
            duration_s=3,
            aspect_ratio="9:16",
            remix_of=None if source is None else source.post_id,
            mode=mode,
            seed=len(key),
        )
        jobs[key] = _run(users[username], key, request, posts)
    username, key, source_keys, caption = STITCH_JOB
    sources = [jobs.get(source_key) for source_key in source_keys]
    if username in users and all(job is not None and job.post_id for job in sources):
        request = services.GenerationRequest(
            prompt="",
            duration_s=0,
            aspect_ratio="",
            mode=GenerationMode.STITCH,
            source_ids=[job.post_id for job in sources],
            caption=caption,
        )
        _run(users[username], key, request, posts)
    username, key, shots = STORYBOARD_JOB
    if username in users:
        request = services.GenerationRequest(
            prompt="",
            duration_s=0,
            aspect_ratio="9:16",
            shots=[ShotRequest(prompt=prompt, duration_s=seconds) for prompt, seconds in shots],
            seed=len(key),
        )
        _run(users[username], key, request, posts)
    username, key, prompt = TWO_CAMEOS_JOB
    alice_cameo = _active_cameo(owner__username="alice", kind=CameoKind.PERSON)
    if username in users and alice_cameo is not None and _active_cameo(handle=DEMO_PET_HANDLE):
        request = services.GenerationRequest(
            prompt=prompt, duration_s=3, aspect_ratio="9:16", cameo_ids=[alice_cameo.pk], seed=len(key)
        )
        _run(users[username], key, request, posts)
    return posts


def _run(user: User, key: str, request: services.GenerationRequest, posts: list[Post]) -> Generation:
    """Runs the job (unless it already ran) and publishes its post, appended to `posts`."""
    job, _ = services.request_generation(user=user, request=request, idempotency_key=key, enqueue_job=False)
    if job.status in (GenerationStatus.QUEUED, GenerationStatus.RUNNING):
        for shot_id in job.shots.values_list("pk", flat=True):
            worker.execute_shot(shot_id)
        job = worker.execute_generation(job.pk) or Generation.objects.get(pk=job.pk)
    post = _publish(job)
    if post is not None:
        posts.append(post)
    return job


def _active_cameo(**lookup) -> Cameo | None:
    return Cameo.objects.filter(status=CameoStatus.ACTIVE, **lookup).order_by("pk").first()
