from datetime import date

from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

ADULT_AGE = 18


class Tier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"


def age_on(birth_date: date, today: date) -> int:
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True, default="")
    bio = models.CharField(max_length=500, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    tier = models.CharField(max_length=8, choices=Tier.choices, default=Tier.FREE)
    # Denormalised counters, changed only by F() updates in social.services so concurrent writers
    # never lose an update.
    followers_count = models.PositiveIntegerField(default=0)
    following_count = models.PositiveIntegerField(default=0)
    posts_count = models.PositiveIntegerField(default=0)
    # The for_you feed as the user keeps it (`GET|PUT /me/feed`). On the user's row, which every
    # authenticated request reads anyway, so a feed page reads them at no cost. The mood is only
    # kept here: ranking by it comes with mood steering (API.md), which reads it from here.
    feed_mood = models.CharField(max_length=200, blank=True, default="")
    # Null until the user chooses: the default for their age (off for minors, API.md).
    feed_personalised = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(tier__in=["free", "pro"]), name="user_tier_valid"),
        ]

    @property
    def is_minor(self) -> bool:
        """Users without a birth date (staff made by hand) are treated as minors: the safe side."""
        if self.birth_date is None:
            return True
        return age_on(self.birth_date, timezone.localdate()) < ADULT_AGE


class PostStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    REMOVED = "removed", "Removed"


def post_media_path(post: "Post", filename: str) -> str:
    return f"posts/{post.author_id}/{filename}"


class Post(models.Model):
    """A generated video. Made as a draft by generation; published by its author.

    `cameo_owner_ids`, `cameo_refs` and `ip_refs` are written by the higher apps (cameo, remix,
    generation) when they create the post, so this app can decide visibility and render posts
    without importing them: owners of cameos in a draft may see it.
    """

    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="posts")
    status = models.CharField(max_length=12, choices=PostStatus.choices, default=PostStatus.DRAFT)
    caption = models.CharField(max_length=2200, blank=True, default="")
    prompt = models.TextField(blank=True, default="")
    video = models.FileField(upload_to=post_media_path, max_length=300, blank=True)
    poster = models.FileField(upload_to=post_media_path, max_length=300, blank=True)
    duration_s = models.FloatField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    # Whether the video file carries a sound track (read from the file when the post is made).
    has_audio = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    remix_allowed = models.BooleanField(default=True)
    remix_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="remixes"
    )
    root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="descendants"
    )
    depth = models.PositiveIntegerField(default=0)
    # A stitch's sources in the order joined: its lineage to each (remix_of is a remix's or a
    # continuation's one source). Ids, not keys: a source deleted later stays named here.
    source_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    like_count = models.PositiveIntegerField(default=0)
    comment_count = models.PositiveIntegerField(default=0)
    remix_count = models.PositiveIntegerField(default=0)
    view_count = models.PositiveIntegerField(default=0)
    content_id = models.UUIDField(null=True, blank=True, unique=True)
    provider = models.CharField(max_length=64, blank=True, default="")
    cameo_owner_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    cameo_refs = models.JSONField(default=list, blank=True)
    ip_refs = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["author", "status", "-created_at"], name="post_author_status_idx"),
            models.Index(fields=["status", "-published_at", "-id"], name="post_published_idx"),
            GinIndex(fields=["cameo_owner_ids"], name="post_cameo_owners_gin"),
            models.Index(
                fields=["author", "-published_at", "-id"],
                name="post_author_published_idx",
                condition=models.Q(status="published"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["draft", "published", "removed"]), name="post_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status="draft")
                | models.Q(published_at__isnull=False)
                | models.Q(status="removed"),
                name="post_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"post {self.pk} by {self.author_id} ({self.status})"

    @property
    def chain_root_id(self) -> int:
        """The remix chain the post belongs to: its root, or the post itself when it is no remix
        (`COALESCE(root_id, id)` where the feed's SQL reads it)."""
        return self.root_id or self.pk


class Follow(models.Model):
    follower = models.ForeignKey(User, on_delete=models.CASCADE, related_name="following_edges")
    followee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="follower_edges")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="follow_unique"),
            models.CheckConstraint(
                condition=~models.Q(follower=models.F("followee")), name="follow_not_self"
            ),
        ]
        indexes = [models.Index(fields=["followee", "-created_at"], name="follow_followee_idx")]

    def __str__(self) -> str:
        return f"{self.follower_id} follows {self.followee_id}"


class Block(models.Model):
    """A block works both ways: neither side sees the other or may use the other's cameo."""

    blocker = models.ForeignKey(User, on_delete=models.CASCADE, related_name="blocks_made")
    blocked = models.ForeignKey(User, on_delete=models.CASCADE, related_name="blocks_received")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="block_unique"),
            models.CheckConstraint(condition=~models.Q(blocker=models.F("blocked")), name="block_not_self"),
        ]
        indexes = [models.Index(fields=["blocked"], name="block_blocked_idx")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Like(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="likes")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    created_at = models.DateTimeField(default=timezone.now)
    # The liked post's author and remix chain (its root, or the post itself when it is no remix),
    # copied when the like is made: the for_you ranking reads a viewer's recent likes with them from
    # one index instead of visiting every liked post. Neither changes afterwards: a post keeps its
    # author, and a chain whose root is deleted breaks up (its remixes become roots of their own),
    # so a like of it no longer matches any candidate, as the post's own root would not either.
    post_author_id = models.BigIntegerField()
    post_root_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "post"], name="like_unique")]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                include=["post_author_id", "post_root_id"],
                name="like_user_recent_cover_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} likes {self.post_id}"


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="comments")
    text = models.CharField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["post", "-id"], name="comment_post_idx")]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.post_id}"


class ReportStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACTIONED = "actioned", "Taken down"
    DISMISSED = "dismissed", "Dismissed"


class Report(models.Model):
    """A viewer's report of a post; staff work through the open ones in the admin."""

    reporter = models.ForeignKey(User, on_delete=models.CASCADE, related_name="reports_made")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=12, choices=ReportStatus.choices, default=ReportStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports_resolved"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reporter", "post"], name="report_once_per_post"),
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "actioned", "dismissed"]), name="report_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="report_queue_idx")]

    def __str__(self) -> str:
        return f"report {self.pk} on {self.post_id} ({self.status})"


class PostView(models.Model):
    """One row per viewer, post and day: a view is counted once per viewer per post per day."""

    viewer = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    watched_ms = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["viewer", "post", "day"], name="view_once_a_day")]

    def __str__(self) -> str:
        return f"{self.viewer_id} viewed {self.post_id} on {self.day}"


class NotificationKind(models.TextChoices):
    FOLLOW = "follow", "New follower"
    LIKE = "like", "Like"
    COMMENT = "comment", "Comment"
    REMIX = "remix", "Remix of your post"
    CAMEO_APPEARANCE = "cameo_appearance", "Your cameo appears in a draft"
    CAMEO_PUBLISHED = "cameo_published", "A post with your cameo was published"
    GENERATION_FINISHED = "generation_finished", "Generation finished"
    CAMEO_REQUEST = "cameo_request", "Someone asks to use your cameo"
    GUARDIAN_LINKED = "guardian_linked", "A guardian link was made"
    GUARDIAN_CONTROLS_CHANGED = "guardian_controls_changed", "A guardian changed a teen's controls"
    GUARDIAN_UNLINKED = "guardian_unlinked", "A guardian link ended"


class Notification(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-id"], name="notification_user_idx")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"


class CameoPermissionCap(models.TextChoices):
    """The widest permission a guardian lets their teen's cameos have: the cameo app's permissions
    a minor's cameo may have at all (cameo.models.Permission without `everyone`), which that app
    ranks and enforces (this app may not import it; a test keeps the two in step)."""

    ONLY_ME = "only_me", "Only me"
    APPROVED = "approved", "Approved people"
    MUTUALS = "mutuals", "Mutuals"


class GuardianCode(models.Model):
    """A code a minor hands to an adult who is to become their guardian (`POST /guardians/link`).

    One per teen (a new one replaces the old), used once (deleted when redeemed), valid until
    `expires_at`. Unique, so a code names one teen."""

    teen = models.OneToOneField(User, on_delete=models.CASCADE, related_name="guardian_code")
    code = models.CharField(max_length=16, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"guardian code of {self.teen_id}"


class GuardianLink(models.Model):
    """A guardian and the minor they look after, with the controls the guardian sets.

    A teen has at most one guardian (the database says so); an adult may look after several teens.
    The controls hold while the teen is a minor (`social.selectors.guardian_controls_for`):
    - personalised: false keeps the teen's for_you unpersonalised whatever they choose; true leaves
      the choice to them (`GET|PUT /me/feed`);
    - daily_scroll_limit: posts a day the feed serves the teen; null: SCROLL_LIMIT_MINOR;
    - cameo_permission_cap: the widest permission the teen's cameos may have (the cameo app lowers
      wider ones when the cap is set and refuses wider ones after);
    - remix_of_my_posts: false turns remixing of the teen's posts off and keeps it off.
    """

    teen = models.OneToOneField(User, on_delete=models.CASCADE, related_name="guardian_link")
    guardian = models.ForeignKey(User, on_delete=models.CASCADE, related_name="guarded_links")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    personalised = models.BooleanField(default=False)
    daily_scroll_limit = models.PositiveIntegerField(null=True, blank=True)
    cameo_permission_cap = models.CharField(
        max_length=10, choices=CameoPermissionCap.choices, default=CameoPermissionCap.MUTUALS
    )
    remix_of_my_posts = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(teen=models.F("guardian")), name="guardian_link_not_self"
            ),
            models.CheckConstraint(
                condition=models.Q(cameo_permission_cap__in=CameoPermissionCap.values),
                name="guardian_link_cap_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.guardian_id} looks after {self.teen_id}"


class GuardianAudit(models.Model):
    """Append-only: each link, change of controls and unlink, who made it and what changed. The
    people are kept by id too, so the trail outlives the guardian's account."""

    teen = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    guardian_id_value = models.BigIntegerField()
    actor_id_value = models.BigIntegerField()
    action = models.CharField(max_length=24)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["teen", "-at", "-id"], name="guardian_audit_teen_idx")]

    def __str__(self) -> str:
        return f"{self.action} for teen {self.teen_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


EXPORT_IN_FLIGHT = (ExportStatus.QUEUED, ExportStatus.RUNNING)


class DataExport(models.Model):
    """One ZIP of everything a user made here (social/exports.py builds it), kept EXPORT_TTL_S.

    A job like a generation: committed with its dispatch pending (`dispatched_at` null, the outbox),
    claimed by a worker with an attempt count and a heartbeat, so a lost message is sent again and
    a dead worker's export is taken again or failed. One export in flight per user (the database
    says so). The ZIP lives in the media storage under an unguessable name and is reached only at
    a signed URL that expires.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="data_exports")
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    # The random part of the ZIP's stored name: each attempt writes `exports/<user>/<token>-<n>.zip`.
    token = models.CharField(max_length=32, unique=True)
    file = models.FileField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When a ready export's file is deleted (finished_at + EXPORT_TTL_S).
    expires_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="export_user_recent_idx"),
            models.Index(
                fields=["dispatched_at", "id"], name="export_outbox_idx", condition=models.Q(status="queued")
            ),
            models.Index(
                fields=["heartbeat_at"], name="export_running_idx", condition=models.Q(status="running")
            ),
            models.Index(fields=["expires_at"], name="export_ready_idx", condition=models.Q(status="ready")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(status__in=["queued", "running"]),
                name="export_one_in_flight_per_user",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "running", "ready", "failed", "expired"]),
                name="export_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0) & models.Q(progress__lte=1), name="export_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.user_id} ({self.status})"
