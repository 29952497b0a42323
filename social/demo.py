"""The social part of the demo that `make run` loads: users, follows and a few published posts.

The posts' videos are rendered here with PyAV (coloured shapes moving over a gradient, 2 s, 9:16),
so the repository carries no media. Every step is idempotent: demo posts have fixed content ids.
"""

import tempfile
import uuid
from datetime import date
from pathlib import Path

import numpy as np
from django.db import transaction

from core.video import write_video
from social.models import Post, User
from social.services import create_post, follow_user

DEMO_PASSWORD = "demo-password-42"
DEMO_USERS = [
    ("alice", "Alice", date(1994, 3, 2)),
    ("bob", "Bob", date(1990, 7, 19)),
    ("carol", "Carol", date(1988, 11, 5)),
    ("dan", "Dan", date(2011, 1, 30)),
]
DEMO_FOLLOWS = [("alice", "bob"), ("alice", "carol"), ("bob", "alice"), ("carol", "alice"), ("dan", "carol")]
# (author, caption, prompt, shape colour RGB)
DEMO_POSTS = [
    ("alice", "Sunset drift", "an orange sun sliding over a violet sea", (250, 140, 40)),
    ("bob", "Neon chase", "a green comet chasing a pink square through the night", (60, 230, 120)),
    ("carol", "Blue bounce", "a blue ball bouncing in a tall glass room", (60, 120, 250)),
    ("alice", "Lemon orbit", "a yellow moon orbiting a tiny planet", (240, 220, 60)),
    ("bob", "Red relay", "a red square racing to the top of the screen", (230, 50, 60)),
    ("carol", "Mint waves", "mint waves rolling under a white circle", (120, 240, 210)),
]
DEMO_NAMESPACE = uuid.UUID("8f5d7c44-6a43-4c59-9f4e-3c1f7d2a9b10")
DEMO_VIDEO_SIZE = (144, 256)  # 9:16
DEMO_FPS = 12
DEMO_SECONDS = 2


def sample_frames(*, color: tuple[int, int, int], seed: int):
    """A square and a circle moving over a vertical gradient."""
    width, height = DEMO_VIDEO_SIZE
    rows, cols = np.mgrid[0:height, 0:width]
    background = np.zeros((height, width, 3), dtype=np.uint8)
    background[..., 0] = (rows * 80 // height + seed * 30) % 256
    background[..., 2] = 120 + rows * 100 // height
    total = DEMO_FPS * DEMO_SECONDS
    for index in range(total):
        phase = index / total * 2 * np.pi
        frame = background.copy()
        side = 36
        x = int((width - side) * (0.5 + 0.45 * np.sin(phase + seed)))
        y = int((height - side) * index / total)
        frame[y : y + side, x : x + side] = color
        cx = width / 2 + 40 * np.cos(phase * 2)
        cy = height / 2 + 70 * np.sin(phase)
        frame[(cols - cx) ** 2 + (rows - cy) ** 2 < 18**2] = (255, 255, 255)
        yield frame


def render_sample_video(path: Path, *, color: tuple[int, int, int], seed: int) -> Path:
    """A 2-second H.264 clip of the frames above."""
    write_video(
        path,
        sample_frames(color=color, seed=seed),
        fps=DEMO_FPS,
        codec_options={"preset": "veryfast", "crf": "30"},
    )
    return path


def seed_social_demo() -> dict[str, User]:
    users = {}
    with transaction.atomic():
        for username, display_name, birth_date in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"display_name": display_name, "birth_date": birth_date}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            users[username] = user
    for follower, followee in DEMO_FOLLOWS:
        follow_user(follower=users[follower], followee=users[followee])
    with tempfile.TemporaryDirectory() as workdir:
        for index, (author, caption, prompt, color) in enumerate(DEMO_POSTS):
            content_id = uuid.uuid5(DEMO_NAMESPACE, f"demo-post-{index}")
            if Post.objects.filter(content_id=content_id).exists():
                continue
            video = render_sample_video(Path(workdir) / f"demo-{index}.mp4", color=color, seed=index)
            create_post(
                author=users[author],
                video=video,
                prompt=prompt,
                caption=caption,
                status="published",
                content_id=content_id,
                provider="reelforge-demo",
            )
    return users
