from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import BitField, HnswIndex


class GenerationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    BLOCKED = "blocked", "Blocked"
    CANCELLED = "cancelled", "Cancelled"


IN_FLIGHT = (GenerationStatus.QUEUED, GenerationStatus.RUNNING)


class GenerationMode(models.TextChoices):
    CREATE = "create", "Create"
    REMIX = "remix", "Remix"
    CONTINUE = "continue", "Continue"
    # Joins existing posts (`source_ids`) into one; made with POST /posts/stitch, rendered by no model.
    STITCH = "stitch", "Stitch"
    # Several shots (GenerationShot) rendered apart, in parallel where GPU workers allow, then joined.
    STORYBOARD = "storyboard", "Storyboard"


class AspectRatio(models.TextChoices):
    PORTRAIT = "9:16", "9:16"
    LANDSCAPE = "16:9", "16:9"
    SQUARE = "1:1", "1:1"


class Generation(models.Model):
    """One video job. Its state changes are transactions; `post` is unique, so however often the
    worker retries a job it makes at most one post."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations")
    status = models.CharField(
        max_length=12, choices=GenerationStatus.choices, default=GenerationStatus.QUEUED
    )
    progress = models.FloatField(default=0.0)
    prompt = models.TextField()
    # What the model sees: the (remix-composed) prompt plus each cameo's instructions.
    composed_prompt = models.TextField(blank=True, default="")
    mode = models.CharField(max_length=10, choices=GenerationMode.choices, default=GenerationMode.CREATE)
    duration_s = models.PositiveSmallIntegerField()
    aspect_ratio = models.CharField(max_length=5, choices=AspectRatio.choices, default=AspectRatio.PORTRAIT)
    # The cameos the request named.
    cameo_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # Every cameo the video carries: the named ones, then those inherited from its sources
    # (cameo.lineage.job_likenesses). Consent rechecks, blocking and the likeness scan use this.
    likeness_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # [{cameo_id, owner_id, owner_username, consent_version, template_version, inherited_from}]
    # for every likeness, as authorised at request time.
    cameo_consents = models.JSONField(default=list, blank=True)
    remix_of = models.ForeignKey(
        "social.Post", null=True, blank=True, on_delete=models.SET_NULL, related_name="generations_remixing"
    )
    # A stitch's posts, in the order they are joined (a post may come more than once).
    source_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # The caption the post is made with (a stitch's; a generation's post starts without one).
    caption = models.TextField(blank=True, default="")
    seed = models.BigIntegerField()
    # Whether the video gets a sound track (rendered with it, or joined from its sources').
    audio = models.BooleanField(default=True)
    # What the job costs of the daily quota: one per shot a model renders (a storyboard's shots).
    quota_units = models.PositiveSmallIntegerField(default=1)
    idempotency_key = models.CharField(max_length=128, blank=True, default="")
    licences = models.JSONField(default=list, blank=True)
    content_id = models.UUIDField(unique=True)
    model_id = models.CharField(max_length=200, blank=True, default="")
    # Seconds per stage of the last attempt (prepare, render, finish, store): operations and bench/.
    timings = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The outbox: when the job's message was last handed to the broker; null while it waits to be
    # sent (see services.dispatch_generations).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=1000, blank=True, default="")
    post = models.OneToOneField(
        "social.Post", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation"
    )

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="generation_user_recent_idx"),
            models.Index(
                fields=["status", "heartbeat_at"],
                name="generation_running_idx",
                condition=Q(status="running"),
            ),
            # The dispatcher's scan: queued jobs by when they were last sent (unsent first).
            models.Index(
                fields=["dispatched_at", "id"],
                name="generation_outbox_idx",
                condition=Q(status="queued"),
            ),
            # Jobs in flight that carry a cameo, found at once when its consent is withdrawn.
            GinIndex(
                fields=["likeness_ids"],
                name="generation_likeness_gin",
                condition=Q(status__in=["queued", "running"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="generation_idempotency_key_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[choice.value for choice in GenerationStatus]),
                name="generation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="generation_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"generation {self.pk} ({self.status})"


class GenerationShot(models.Model):
    """One shot of a storyboard: rendered by one GPU task (claimed with its own attempt count and
    heartbeat, so a worker that dies mid-shot costs that shot a re-run, not the storyboard), its
    output kept in the media storage under `output_name` until the storyboard's join task has
    joined every shot. The storyboard's consent, blocking and cancelling act on its Generation."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="shots")
    index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    composed_prompt = models.TextField(blank=True, default="")
    duration_s = models.PositiveSmallIntegerField()
    # The cameos the shot names, and every cameo it shows (named and mentioned), in order.
    cameo_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    likeness_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    seed = models.BigIntegerField()
    status = models.CharField(
        max_length=12, choices=GenerationStatus.choices, default=GenerationStatus.QUEUED
    )
    progress = models.FloatField(default=0.0)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output_name = models.CharField(max_length=300, blank=True, default="")
    model_id = models.CharField(max_length=200, blank=True, default="")
    # {cameo id: "identity" | "reference"} as the model was conditioned (generation.backends).
    conditioning = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["generation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="generation_shot_index_unique"),
            models.CheckConstraint(
                condition=Q(status__in=[choice.value for choice in GenerationStatus]),
                name="generation_shot_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="generation_shot_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"shot {self.index} of generation {self.generation_id} ({self.status})"


class Provenance(models.Model):
    """The creation record of a generated post: the human creative input behind it."""

    post = models.OneToOneField("social.Post", on_delete=models.CASCADE, related_name="provenance")
    generation = models.OneToOneField(
        Generation, null=True, on_delete=models.SET_NULL, related_name="provenance"
    )
    content_id = models.UUIDField(unique=True)
    record = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"provenance of post {self.post_id}"


class ContentFingerprint(models.Model):
    """The perceptual hash (PDQ) of one sampled frame of a post's video, at `at_ms` from its start,
    of the frame's centre `region_pct` percent (generation.fingerprints). Written once per post
    with its video; (post, at_ms, region_pct) is unique, so a retried store or backfill adds
    nothing."""

    post = models.ForeignKey("social.Post", on_delete=models.CASCADE, related_name="fingerprints")
    at_ms = models.PositiveIntegerField()
    region_pct = models.PositiveSmallIntegerField(default=100)
    hash = BitField(length=256)
    quality = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["post", "at_ms", "region_pct"], name="content_fingerprint_frame_unique"
            ),
        ]
        indexes = [
            # Nearest stored frames to an upload's frame, by Hamming distance.
            HnswIndex(
                fields=["hash"],
                name="content_fingerprint_hnsw",
                m=16,
                ef_construction=64,
                opclasses=["bit_hamming_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"fingerprint of post {self.post_id} at {self.at_ms} ms"
