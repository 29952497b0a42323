"""Every write of the social app: plain functions, keyword-only, one transaction each."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import uuid
from datetime import date
from pathlib import Path

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, QuerySet
from django.db.models.signals import Signal
from django.utils import timezone

from core.errors import AccountGone, ApiError, Conflict, Forbidden
from core.realtime import end_sessions, push_to_user
from social import hooks, media, selectors
from social.models import (
    Block,
    Comment,
    Follow,
    Like,
    Notification,
    NotificationKind,
    Post,
    PostStatus,
    PostView,
    Report,
    ReportStatus,
    User,
)

# Sent inside the transaction that deletes a user, before the row goes; later apps erase what they
# hold for that user (cameos and their biometric data) in the same transaction.
user_deleting = Signal()


def register_user(*, username: str, password: str, birth_date: date, email: str = "") -> User:
    candidate = User(username=username, email=email or "", birth_date=birth_date)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ApiError(
            "The password is too weak.", code="invalid", details={"password": exc.messages}
        ) from exc
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise ApiError("This username is taken.", code="username_taken")
            candidate.set_password(password)
            candidate.save()
    except IntegrityError as exc:
        raise ApiError("This username is taken.", code="username_taken") from exc
    return candidate


def _lock_account(user: User) -> User:
    """The user's row, locked; 401 when the account was deleted since the request authenticated
    (a deletion locks the row first, so a change either waits for it or is refused)."""
    locked = User.objects.select_for_update().filter(pk=user.pk).first()
    if locked is None:
        raise AccountGone()
    return locked


def update_profile(*, user: User, **changes) -> User:
    allowed = {"display_name", "bio", "email"}
    fields = [name for name in changes if name in allowed]
    with transaction.atomic():
        locked = _lock_account(user)
        for name in fields:
            setattr(locked, name, changes[name])
        if fields:
            locked.save(update_fields=fields)
    return locked


def delete_account(*, user: User) -> None:
    """Deletes the account with everything it owns, the files of its posts included (once the
    deletion commits), and takes what its rows added out of other people's counters."""
    with transaction.atomic():
        # The account and the people whose counters change, in id order, before the account's own
        # row lock: two accounts following each other and deleted at once would otherwise each
        # hold its own row and wait for the other's.
        _lock_in_id_order(User, User.objects.filter(pk=user.pk).values("pk"), *_counted_ids(user.pk, User))
        locked = _lock_account(user)
        user_deleting.send(sender=User, user=locked)
        _take_back_counters_fed_by(locked.pk)
        posts = list(Post.objects.filter(author=locked).values_list("pk", "video", "poster"))
        hooks.run_posts_leaving([post_id for post_id, _video, _poster in posts])
        from social.guardians import end_links_of_deleted_account

        end_links_of_deleted_account(locked)
        files = [name for _post_id, *names in posts for name in names]
        from social.exports import stored_file_names_of

        _delete_media_on_commit(*files, *stored_file_names_of(user_id=locked.pk))
        end_sessions(locked.pk)
        locked.delete()


# Every denormalised counter that rows owned by a user feed: (row model, owner field, counted
# field, counter on the counted row). A like by the user is one in its post's like_count, a follow
# by the user one in the followee's followers_count; the rows go with the account, so
# delete_account takes them out of the counters.
COUNTERS_FED_BY_A_USER = (
    (Like, "user", "post", "like_count"),
    (Comment, "author", "post", "comment_count"),
    (PostView, "viewer", "post", "view_count"),
    (Post, "author", "remix_of", "remix_count"),
    (Follow, "follower", "followee", "followers_count"),
    (Follow, "followee", "follower", "following_count"),
)


def _fed_by(user_id: int):
    """(the user's rows, counted field, counted model, counter) for each of COUNTERS_FED_BY_A_USER."""
    for model, owner, counted, counter in COUNTERS_FED_BY_A_USER:
        rows = model.objects.filter(**{owner: user_id})
        yield rows, counted, model._meta.get_field(counted).related_model, counter


def _counted_ids(user_id: int, model) -> list[QuerySet]:
    """The ids of the rows of `model` whose counters count rows of the user, one query per counter."""
    return [
        rows.values(counted)
        for rows, counted, counted_model, _counter in _fed_by(user_id)
        if counted_model is model
    ]


def _lock_in_id_order(model, *ids: QuerySet) -> None:
    """Locks the rows as an UPDATE of a counter would (NO KEY UPDATE: inserts that reference them
    go on), in id order, so that two deletions touching the same rows wait instead of deadlocking."""
    first, *others = ids
    rows = model.objects.select_for_update(no_key=True).filter(pk__in=first.union(*others, all=True))
    list(rows.order_by("pk").values_list("pk", flat=True))


def _take_back_counters_fed_by(user_id: int) -> None:
    """One set-based UPDATE per counter, in the deleting transaction, with the account's row locked.

    Exact whatever runs alongside: the account's lock lets no new row of the user commit (its
    foreign keys are checked at commit, against the locked row), so each count is of the rows the
    cascade deletes; others' likes and follows are F() + 1 updates, which commute with these.
    The posts are locked first, in id order, and only then counted: a statement's snapshot is taken
    before it waits, so counting while locking could count a like whose unlike committed meanwhile.
    Locked too are the user's own posts and the remixes the cascade detaches from them, so that two
    deletions of people who like each other's posts take their posts in one order.
    """
    own = Post.objects.filter(author_id=user_id)
    _lock_in_id_order(
        Post,
        own.values("pk"),
        Post.objects.filter(remix_of__in=own).values("pk"),
        Post.objects.filter(root__in=own).values("pk"),
        *_counted_ids(user_id, Post),
    )
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for rows, counted, counted_model, counter in _fed_by(user_id):
            per_counted_row = rows.values(counted_id=F(counted)).annotate(n=Count("*"))
            sql, params = per_counted_row.query.sql_with_params()
            # Never below zero: a counter that drifted must not make the account undeletable.
            cursor.execute(
                f"UPDATE {quote(counted_model._meta.db_table)} AS counted"
                f" SET {quote(counter)} = GREATEST(counted.{quote(counter)} - mine.n, 0)"
                f" FROM ({sql}) AS mine WHERE counted.{quote(counted_model._meta.pk.column)} = mine.counted_id",
                params,
            )


# --- posts ----------------------------------------------------------------------------------------


def _local_video_path(video, stack: contextlib.ExitStack) -> Path:
    """A path on the local disk for PyAV: the file itself, or a temporary copy of an upload."""
    if isinstance(video, (str, Path)):
        return Path(video)
    temporary_path = getattr(video, "temporary_file_path", None)
    if callable(temporary_path):
        return Path(temporary_path())
    copy = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".mp4"))  # noqa: SIM115 - the stack closes it
    if hasattr(video, "seek"):
        video.seek(0)
    for chunk in video.chunks() if hasattr(video, "chunks") else iter(lambda: video.read(1 << 20), b""):
        copy.write(chunk)
    copy.flush()
    return Path(copy.name)


def _delete_media_on_commit(*names: str) -> None:
    def delete() -> None:
        for name in names:
            if name:
                default_storage.delete(name)

    transaction.on_commit(delete)


def _change_user_counters(*changes: tuple[int, str, int]) -> None:
    """Applies (user_id, field, delta) changes as F() updates in ascending user id order, so two
    transactions touching the same users (A follows B while B follows A) cannot deadlock."""
    for user_id, field, delta in sorted(changes):
        rows = User.objects.filter(pk=user_id)
        if delta < 0:
            rows = rows.filter(**{f"{field}__gte": -delta})
        rows.update(**{field: F(field) + delta})


def _change_post_counter(post_id: int, field: str, delta: int) -> None:
    rows = Post.objects.filter(pk=post_id)
    if delta < 0:
        rows = rows.filter(**{f"{field}__gte": -delta})
    rows.update(**{field: F(field) + delta})


def create_post(
    *,
    author: User,
    video,
    prompt: str = "",
    caption: str = "",
    status: str = PostStatus.DRAFT,
    remix_of: Post | None = None,
    content_id=None,
    provider: str = "",
    cameo_owner_ids=(),
    cameo_refs=(),
    ip_refs=(),
    remix_allowed: bool = True,
    source_ids=(),
) -> Post:
    """Stores a video (a path or a Django File of an MP4) as a post with its poster frame.

    The file is probed first (415 `unsupported_media` for anything PyAV cannot decode as video).
    A remix records its parent and root and bumps the parent's `remix_count`; the parent's author
    is notified. `status="published"` publishes at once through the same checks as `publish_post`.
    """
    if status not in (PostStatus.DRAFT, PostStatus.PUBLISHED):
        raise ApiError("A new post is a draft or published.", details={"status": ["Invalid status."]})
    with contextlib.ExitStack() as stack:
        info = media.probe_video(_local_video_path(video, stack))
        stem = uuid.uuid4().hex
        if isinstance(video, (str, Path)):
            video_file = File(stack.enter_context(open(video, "rb")))
        else:
            video_file = video
            video_file.seek(0)
        video_name = default_storage.save(post_media_path_for(author.pk, f"{stem}.mp4"), video_file)
    poster_name = default_storage.save(
        post_media_path_for(author.pk, f"{stem}.jpg"), ContentFile(info.poster_jpeg)
    )
    try:
        with transaction.atomic():
            remix_allowed = remix_allowed and _guardian_allows_remix(author, lock=True)
            post = Post(
                author=author,
                status=PostStatus.DRAFT,
                caption=caption,
                prompt=prompt,
                duration_s=info.duration_s,
                width=info.width,
                height=info.height,
                size_bytes=info.size_bytes,
                has_audio=info.has_audio,
                remix_allowed=remix_allowed,
                content_id=content_id,
                provider=provider,
                cameo_owner_ids=sorted({int(owner_id) for owner_id in cameo_owner_ids}),
                cameo_refs=list(cameo_refs),
                ip_refs=list(ip_refs),
                source_ids=[int(source_id) for source_id in source_ids],
            )
            post.video.name = video_name
            post.poster.name = poster_name
            if remix_of is not None:
                post.remix_of = remix_of
                post.root_id = remix_of.chain_root_id
                post.depth = remix_of.depth + 1
            post.save()
            if remix_of is not None:
                _change_post_counter(remix_of.pk, "remix_count", 1)
                notify(user=remix_of.author, kind=NotificationKind.REMIX, actor=author, post=post)
            if status == PostStatus.PUBLISHED:
                post = publish_post(actor=author, post=post)
    except BaseException:
        default_storage.delete(video_name)
        default_storage.delete(poster_name)
        raise
    return post


def guardian_control_refusal(*, control: str, message: str, **details) -> Forbidden:
    """403 `guardian_control`: a minor asked for what their guardian's `control` rules out."""
    return Forbidden(message, code="guardian_control", details={"control": control, **details})


def _guardian_allows_remix(author: User, *, lock: bool) -> bool:
    """Whether the author's guardian lets others remix their posts. A guardian turning it off
    locks the link, then updates every post of the teen (social.guardians): a new post locks the
    link first (`lock`), so it waits for the change or the change waits for it; an edit reads it
    with its post locked, so the change waits for the edit or the edit reads the change."""
    controls = selectors.guardian_controls_for(teen=author, lock=lock)
    return controls is None or controls.remix_of_my_posts


def post_media_path_for(author_id: int, filename: str) -> str:
    return f"posts/{author_id}/{filename}"


def publish_post(*, actor: User, post: Post) -> Post:
    """Publishes the author's draft after every registered publish check passed (see social.hooks).

    The checks run before the post's row is locked: they lock the rows their decision rests on
    (a cameo's consent), and every writer of those rows locks them before any post, so the order
    is always theirs, then the post. Owners of cameos in the post (other than the author) are told
    it is now public.
    """
    with transaction.atomic():
        current = Post.objects.only("author_id", "status").get(pk=post.pk)
        if current.author_id != actor.pk:
            raise Forbidden("Only the author may publish this post.")
        if current.status == PostStatus.DRAFT:
            hooks.run_publish_checks(post)
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if locked.status == PostStatus.PUBLISHED:
            return locked
        if locked.status == PostStatus.REMOVED:
            raise Conflict("This post was taken down.", code="post_removed")
        locked.status = PostStatus.PUBLISHED
        locked.published_at = timezone.now()
        locked.save(update_fields=["status", "published_at"])
        _change_user_counters((locked.author_id, "posts_count", 1))
        for owner_id in locked.cameo_owner_ids:
            notify(user=owner_id, kind=NotificationKind.CAMEO_PUBLISHED, actor=actor, post=locked)
    return locked


def update_post(
    *, actor: User, post: Post, caption: str | None = None, remix_allowed: bool | None = None
) -> Post:
    with transaction.atomic():
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if locked.author_id != actor.pk:
            raise Forbidden("Only the author may edit this post.")
        if locked.status == PostStatus.REMOVED:
            raise Conflict("This post was taken down.", code="post_removed")
        fields = []
        if caption is not None:
            locked.caption = caption
            fields.append("caption")
        if remix_allowed is not None:
            if remix_allowed and not _guardian_allows_remix(actor, lock=False):
                raise guardian_control_refusal(
                    control="remix_of_my_posts", message="Your guardian turned remixing of your posts off."
                )
            locked.remix_allowed = remix_allowed
            fields.append("remix_allowed")
        if fields:
            locked.save(update_fields=fields)
    return locked


def take_down_post(*, actor: User, post: Post) -> Post:
    """Removes a post from everyone but its author, and erases its media.

    Staff (moderation) and the owner of a cameo in the post may do it: a person may always pull
    their likeness out of circulation.
    """
    with transaction.atomic():
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if not (actor.is_staff or actor.pk in locked.cameo_owner_ids):
            raise Forbidden("Only moderators and people whose cameo is in the post may take it down.")
        if locked.status == PostStatus.REMOVED:
            return locked
        if locked.status == PostStatus.PUBLISHED:
            _change_user_counters((locked.author_id, "posts_count", -1))
        hooks.run_posts_leaving([locked.pk])
        _delete_media_on_commit(locked.video.name, locked.poster.name)
        locked.status = PostStatus.REMOVED
        locked.video.name = ""
        locked.poster.name = ""
        locked.save(update_fields=["status", "video", "poster"])
        Report.objects.filter(post=locked, status=ReportStatus.OPEN).update(
            status=ReportStatus.ACTIONED, resolved_at=timezone.now(), resolved_by=actor
        )
    return locked


def delete_post(*, actor: User, post: Post) -> None:
    with transaction.atomic():
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if locked.author_id != actor.pk:
            raise Forbidden("Only the author may delete this post.")
        if locked.status == PostStatus.PUBLISHED:
            _change_user_counters((locked.author_id, "posts_count", -1))
        if locked.remix_of_id is not None:
            _change_post_counter(locked.remix_of_id, "remix_count", -1)
        hooks.run_posts_leaving([locked.pk])
        _delete_media_on_commit(locked.video.name, locked.poster.name)
        locked.delete()


# --- the feed as the user keeps it ---------------------------------------------------------------

_UNCHANGED = object()


def set_feed_preferences(*, user: User, mood=_UNCHANGED, personalised=_UNCHANGED) -> User:
    """Keeps the user's mood (only kept: ranking by it comes with mood steering) and whether their
    for_you may use personal signals (None: the default for their age). A minor whose guardian
    keeps personalisation off cannot turn it on: 403 `guardian_control`. The guardian's control
    is also applied when the feed is read, so a change of it made meanwhile still holds."""
    with transaction.atomic():
        locked = _lock_account(user)
        if personalised is True and selectors.feed_settings_for(user=locked).personalised_locked:
            raise guardian_control_refusal(
                control="personalised", message="Your guardian keeps your feed unpersonalised."
            )
        fields = []
        if mood is not _UNCHANGED:
            locked.feed_mood = mood or ""
            fields.append("feed_mood")
        if personalised is not _UNCHANGED:
            locked.feed_personalised = personalised
            fields.append("feed_personalised")
        if fields:
            locked.save(update_fields=fields)
    return locked


# --- follows and blocks ---------------------------------------------------------------------------


def follow_user(*, follower: User, followee: User) -> bool:
    """Idempotent; returns whether a new follow was made."""
    if follower.pk == followee.pk:
        raise ApiError("You cannot follow yourself.", code="cannot_follow_self")
    if selectors.is_blocked_either_way(user_id=follower.pk, other_id=followee.pk):
        raise Forbidden("One of you blocked the other.", code="blocked")
    with transaction.atomic():
        try:
            with transaction.atomic():
                Follow.objects.create(follower=follower, followee=followee)
        except IntegrityError:
            return False
        _change_user_counters((follower.pk, "following_count", 1), (followee.pk, "followers_count", 1))
        # Following, unfollowing and following again is one piece of news, not one per toggle.
        told_recently = Notification.objects.filter(
            user_id=followee.pk,
            actor_id=follower.pk,
            kind=NotificationKind.FOLLOW,
            created_at__gte=timezone.now() - dt.timedelta(seconds=settings.FOLLOW_NOTIFY_AGAIN_AFTER_S),
        ).exists()
        if not told_recently:
            notify(user=followee, kind=NotificationKind.FOLLOW, actor=follower)
    return True


def _end_follow(follower_id: int, followee_id: int) -> bool:
    deleted, _ = Follow.objects.filter(follower_id=follower_id, followee_id=followee_id).delete()
    if deleted:
        _change_user_counters((follower_id, "following_count", -1), (followee_id, "followers_count", -1))
    return bool(deleted)


def unfollow_user(*, follower: User, followee: User) -> bool:
    with transaction.atomic():
        return _end_follow(follower.pk, followee.pk)


def block_user(*, blocker: User, blocked: User) -> bool:
    """A block ends the follows between the two, both ways."""
    if blocker.pk == blocked.pk:
        raise ApiError("You cannot block yourself.", code="cannot_block_self")
    with transaction.atomic():
        # Both people first, in id order: a publish locks them too before it decides whether the
        # two may use each other's cameos (cameo.services.refuse_publish_without_consent).
        list(
            User.objects.select_for_update()
            .filter(pk__in=[blocker.pk, blocked.pk])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        try:
            with transaction.atomic():
                Block.objects.create(blocker=blocker, blocked=blocked)
        except IntegrityError:
            return False
        _end_follow(blocker.pk, blocked.pk)
        _end_follow(blocked.pk, blocker.pk)
    return True


def unblock_user(*, blocker: User, blocked: User) -> bool:
    with transaction.atomic():
        deleted, _ = Block.objects.filter(blocker=blocker, blocked=blocked).delete()
    return bool(deleted)


# --- engagement -----------------------------------------------------------------------------------


def _require_published(post: Post) -> None:
    if post.status != PostStatus.PUBLISHED:
        raise Conflict("This post is not published.", code="not_published")


def _violated_constraint(error: IntegrityError) -> str | None:
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None)


def like_post(*, user: User, post: Post) -> bool:
    """Idempotent: the unique (user, post) row decides; the counter moves only when a row is made."""
    _require_published(post)
    with transaction.atomic():
        try:
            with transaction.atomic():
                Like.objects.create(
                    user=user, post=post, post_author_id=post.author_id, post_root_id=post.chain_root_id
                )
        except IntegrityError as exc:
            # Only "already liked" means there is nothing to do; any other violation is a bug.
            if _violated_constraint(exc) != "like_unique":
                raise
            return False
        _change_post_counter(post.pk, "like_count", 1)
        notify(user=post.author_id, kind=NotificationKind.LIKE, actor=user, post=post)
    return True


def unlike_post(*, user: User, post: Post) -> bool:
    with transaction.atomic():
        deleted, _ = Like.objects.filter(user=user, post=post).delete()
        if deleted:
            _change_post_counter(post.pk, "like_count", -1)
    return bool(deleted)


def comment_on_post(*, author: User, post: Post, text: str) -> Comment:
    _require_published(post)
    text = text.strip()
    if not text:
        raise ApiError("The comment is empty.", details={"text": ["This field may not be blank."]})
    with transaction.atomic():
        comment = Comment.objects.create(post=post, author=author, text=text)
        _change_post_counter(post.pk, "comment_count", 1)
        notify(
            user=post.author_id,
            kind=NotificationKind.COMMENT,
            actor=author,
            post=post,
            data={"comment_id": str(comment.pk), "text": text[:140]},
        )
    return comment


def report_post(*, reporter: User, post: Post, reason: str) -> Report:
    """One report per reporter and post; reporting again updates the reason and reopens it."""
    with transaction.atomic():
        report, _ = Report.objects.update_or_create(
            reporter=reporter,
            post=post,
            defaults={
                "reason": reason,
                "status": ReportStatus.OPEN,
                "resolved_at": None,
                "resolved_by": None,
            },
        )
    return report


def dismiss_reports(*, actor: User, reports) -> int:
    if not actor.is_staff:
        raise Forbidden("Only moderators may dismiss reports.")
    with transaction.atomic():
        return Report.objects.filter(
            pk__in=[report.pk for report in reports], status=ReportStatus.OPEN
        ).update(status=ReportStatus.DISMISSED, resolved_at=timezone.now(), resolved_by=actor)


MAX_VIEW_EVENTS = 100


def record_views(*, viewer: User, events: list[dict]) -> int:
    """Counts each viewer's view of a post once per day; returns how many views were new.

    Unknown or invisible posts and the author's own views are ignored, so a client can send its
    buffer without knowing what became of each post.
    """
    watched: dict[int, int] = {}
    for event in events[:MAX_VIEW_EVENTS]:
        post_id = int(event["post_id"])
        watched[post_id] = max(watched.get(post_id, 0), int(event.get("watched_ms", 0)))
    if not watched:
        return 0
    countable = list(
        selectors.visible_posts(viewer=viewer, annotate_viewer=False)
        .filter(pk__in=list(watched), status=PostStatus.PUBLISHED)
        .exclude(author_id=viewer.pk)
        .values_list("pk", flat=True)
    )
    if not countable:
        return 0
    today = timezone.now().date()
    rows = [(viewer.pk, post_id, today, watched[post_id]) for post_id in sorted(countable)]
    with transaction.atomic(), connection.cursor() as cursor:
        placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
        cursor.execute(
            f"INSERT INTO {PostView._meta.db_table} (viewer_id, post_id, day, watched_ms) "
            f"VALUES {placeholders} ON CONFLICT (viewer_id, post_id, day) DO NOTHING RETURNING post_id",
            [value for row in rows for value in row],
        )
        new_ids = [row[0] for row in cursor.fetchall()]
        if new_ids:
            Post.objects.filter(pk__in=new_ids).update(view_count=F("view_count") + 1)
    return len(new_ids)


# --- notifications --------------------------------------------------------------------------------


def notify(
    *,
    user: User | int,
    kind: str,
    actor: User | None = None,
    post: Post | None = None,
    data: dict | None = None,
) -> Notification | None:
    """Stores a notification and pushes it over the user's websockets once the transaction commits.

    Nobody is told about their own action, and nothing crosses a block: then nothing is stored and
    None is returned.
    """
    if kind not in NotificationKind.values:
        raise ValueError(f"unknown notification kind {kind!r}")
    user_id = user if isinstance(user, int) else user.pk
    if actor is not None:
        if actor.pk == user_id:
            return None
        if selectors.is_blocked_either_way(user_id=user_id, other_id=actor.pk):
            return None
    notification = Notification.objects.create(
        user_id=user_id, kind=kind, actor=actor, post=post, data=data or {}
    )
    push_to_user(user_id, {"type": "notification", **notification_payload(notification)})
    return notification


def notification_payload(notification: Notification) -> dict:
    """The JSON shape of a notification, shared by the websocket push and `GET /notifications`."""
    actor = notification.actor
    return {
        "id": str(notification.pk),
        "kind": notification.kind,
        "actor": None if actor is None else {"id": str(actor.pk), "username": actor.username},
        "post_id": None if notification.post_id is None else str(notification.post_id),
        "data": notification.data,
        "created_at": notification.created_at.isoformat().replace("+00:00", "Z"),
        "read": notification.read_at is not None,
    }


def mark_notifications_read(*, user: User, ids: list[int] | None = None) -> int:
    with transaction.atomic():
        unread = Notification.objects.filter(user=user, read_at__isnull=True)
        if ids is not None:
            unread = unread.filter(pk__in=ids)
        return unread.update(read_at=timezone.now())
