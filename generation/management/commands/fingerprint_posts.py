"""Fingerprints posts made before fingerprinting existed: `manage.py fingerprint_posts`.

Each post with a video and no fingerprints is hashed from its stored file (the same sampling as
the worker's, generation.fingerprints) and its hashes stored in one statement; a rerun picks up the
posts still without fingerprints, so an interrupted run resumes where it stopped, and a finished
one finds nothing to do. A file that cannot be decoded is reported and skipped.
"""

from __future__ import annotations

import av
from django.core.management.base import BaseCommand
from django.db.models import Exists, OuterRef
from tqdm import tqdm

from generation import fingerprints, services
from generation.models import ContentFingerprint
from social.models import Post


def posts_without_fingerprints():
    return (
        Post.objects.exclude(video="")
        .filter(~Exists(ContentFingerprint.objects.filter(post_id=OuterRef("pk"))))
        .order_by("pk")
    )


class Command(BaseCommand):
    help = "Fingerprints every post that has a video and no fingerprints yet (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--limit", type=int, default=None, help="stop after this many posts")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args, batch_size, limit, no_progress, **options):
        pending = posts_without_fingerprints()
        total = pending.count() if limit is None else min(limit, pending.count())
        done = failed = frames = 0
        last_pk = 0
        with tqdm(total=total, unit="post", disable=no_progress, file=self.stderr._out) as bar:
            while done + failed < total:
                batch = list(
                    pending.filter(pk__gt=last_pk).only("pk", "video")[
                        : min(batch_size, total - done - failed)
                    ]
                )
                if not batch:
                    break
                for post in batch:
                    last_pk = post.pk
                    try:
                        with post.video.open("rb") as handle:
                            hashes = fingerprints.fingerprint_file(handle)
                    except (av.FFmpegError, ValueError, OSError) as exc:
                        failed += 1
                        self.stderr.write(f"post {post.pk}: not fingerprinted ({type(exc).__name__}: {exc})")
                    else:
                        frames += services.record_fingerprints(post_id=post.pk, fingerprints=hashes)
                        done += 1
                    bar.update(1)
        self.stdout.write(f"fingerprinted {done} posts ({frames} frames); {failed} could not be read")
