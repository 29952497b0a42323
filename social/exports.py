"""A user's data export: one ZIP of everything they made here, to take elsewhere.

`request_export` commits a `DataExport` with its dispatch pending and sends it on commit (an outbox,
core.outbox, as generations are sent); the task `social.tasks.build_export` runs `execute_export`,
which claims it with an attempt count and a heartbeat, writes the ZIP to a scratch file (media
streamed in chunks, never whole in memory), stores it in the media storage under an unguessable
name and marks it `ready`. Progress reaches the owner's websockets (`export.progress`,
`export.finished`). The periodic jobs (social/apps.py) send again what the broker may have lost,
take again or fail exports whose worker died, and delete each ZIP EXPORT_TTL_S after it was made
(`expired`).

The ZIP holds JSON beside the media and `manifest.json`, which lists every other file with its
size, sha256 and what it holds. This app writes the account, the posts (with their video and poster
files), comments, likes, follows, blocks and notifications. Higher apps, which this app may not
import, add theirs from an `exports` module of their own (`register_section`, found by
`discover_sections` as the admin finds `admin` modules): generations and creation records, cameos
and their audit trails, earnings. No section reads the biometric storage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from core.errors import Conflict, NotFound
from core.realtime import push_to_user
from social.models import (
    EXPORT_IN_FLIGHT,
    Block,
    Comment,
    DataExport,
    ExportStatus,
    Follow,
    Like,
    Notification,
    Post,
    PostStatus,
    User,
)

logger = logging.getLogger(__name__)

FORMAT = "reelforge-data-export"
FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20
# The worker reports progress (and so its heartbeat) at most this often, and at least this often
# while it copies a large file.
REPORT_EVERY_S = 1.0
_RESERVED_PATHS = {"manifest.json", "posts.json"}


# ---- what goes into an export ------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSection:
    """One JSON file of the export: `collect(user)` returns its JSON-able content."""

    path: str
    describes: str
    collect: Callable[[User], Any]


_sections: dict[str, ExportSection] = {}


def register_section(path: str, *, describes: str, collect: Callable[[User], Any]) -> None:
    """Adds (or replaces) the JSON file `path` of every export; call it at import of an app's
    `exports` module. `describes` is what the manifest says the file holds."""
    if path in _RESERVED_PATHS or path.startswith("media/") or not path.endswith(".json"):
        raise ValueError(f"{path!r} cannot be an export section")
    _sections[path] = ExportSection(path=path, describes=describes, collect=collect)


def registered_sections() -> list[ExportSection]:
    return list(_sections.values())


def discover_sections() -> None:
    """Imports every installed app's `exports` module, where it registers its sections."""
    autodiscover_modules("exports")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


def _profile(user: User) -> dict:
    return {
        "id": str(user.pk),
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "email": user.email,
        "birth_date": user.birth_date,
        "tier": user.tier,
        "joined_at": _iso(user.date_joined),
    }


def _comments(user: User) -> list[dict]:
    rows = Comment.objects.filter(author_id=user.pk).order_by("created_at", "id")
    return [
        {"id": str(row.pk), "post_id": str(row.post_id), "text": row.text, "created_at": _iso(row.created_at)}
        for row in rows
    ]


def _likes(user: User) -> list[dict]:
    rows = Like.objects.filter(user_id=user.pk).order_by("created_at", "id")
    return [{"post_id": str(row.post_id), "created_at": _iso(row.created_at)} for row in rows]


def _people(edges: QuerySet, side: str) -> list[dict]:
    rows = edges.select_related(side).order_by("created_at", "id")
    return [
        {
            "id": str(getattr(row, f"{side}_id")),
            "username": getattr(row, side).username,
            "since": _iso(row.created_at),
        }
        for row in rows
    ]


def _follows(user: User) -> dict:
    return {
        "following": _people(Follow.objects.filter(follower_id=user.pk), "followee"),
        "followers": _people(Follow.objects.filter(followee_id=user.pk), "follower"),
    }


def _blocks(user: User) -> list[dict]:
    return _people(Block.objects.filter(blocker_id=user.pk), "blocked")


def _notifications(user: User) -> list[dict]:
    from social.services import notification_payload

    rows = Notification.objects.filter(user_id=user.pk).select_related("actor").order_by("created_at", "id")
    return [notification_payload(row) for row in rows]


register_section(
    "profile.json",
    describes="the account: username, display name, bio, email, birth date, tier, when it joined",
    collect=_profile,
)
register_section(
    "comments.json", describes="the comments this account wrote, with their posts", collect=_comments
)
register_section("likes.json", describes="the posts this account liked, and when", collect=_likes)
register_section(
    "follows.json", describes="the accounts this account follows and those following it", collect=_follows
)
register_section("blocks.json", describes="the accounts this account blocked", collect=_blocks)
register_section(
    "notifications.json", describes="the notifications this account received", collect=_notifications
)


def _post_record(post: Post, files: dict[tuple[int, str], str]) -> dict:
    return {
        "id": str(post.pk),
        "status": post.status,
        "caption": post.caption,
        "prompt": post.prompt,
        "created_at": _iso(post.created_at),
        "published_at": _iso(post.published_at),
        "duration_s": post.duration_s,
        "width": post.width,
        "height": post.height,
        "has_audio": post.has_audio,
        "remix_of": _str_or_none(post.remix_of_id),
        "root_id": _str_or_none(post.root_id),
        "sources": [str(source_id) for source_id in post.source_ids],
        "remix_allowed": post.remix_allowed,
        "cameos": post.cameo_refs,
        "ip": post.ip_refs,
        "ai_label": {"content_id": _str_or_none(post.content_id), "provider": post.provider},
        "counts": {
            "likes": post.like_count,
            "comments": post.comment_count,
            "remixes": post.remix_count,
            "views": post.view_count,
        },
        "video": files.get((post.pk, "video")),
        "poster": files.get((post.pk, "poster")),
    }


@dataclass(frozen=True)
class _Media:
    post_id: int
    field: str  # video | poster
    name: str  # in the storage
    path: str  # in the ZIP
    content_type: str
    describes: str


def _media_of(posts: Iterable[Post]) -> list[_Media]:
    """The files of the posts; none for a removed post (taken down by someone it shows, the API
    gives its author no media either)."""
    media = []
    for post in posts:
        if post.status == PostStatus.REMOVED:
            continue
        for field, kind, content_type, default_suffix in (
            ("video", "video", "video/mp4", ".mp4"),
            ("poster", "poster frame", "image/jpeg", ".jpg"),
        ):
            name = getattr(post, field).name
            if name:
                suffix = PurePosixPath(name).suffix or default_suffix
                media.append(
                    _Media(
                        post_id=post.pk,
                        field=field,
                        name=name,
                        path=f"media/posts/{post.pk}/{field}{suffix}",
                        content_type=content_type,
                        describes=f"the {kind} of post {post.pk} (see posts.json)",
                    )
                )
    return media


# ---- writing the ZIP ---------------------------------------------------------------------------


def export_storage():
    return DataExport._meta.get_field("file").storage


class _Archive:
    """The ZIP being written and a manifest entry for every file put in it. JSON is deflated;
    media, compressed already, are stored as they are."""

    def __init__(self, zip_file: zipfile.ZipFile):
        self.zip = zip_file
        self.entries: list[dict] = []

    def _entry(self, path: str, size: int, digest: str, content_type: str, describes: str, **more) -> None:
        self.entries.append(
            {
                "path": path,
                "size": size,
                "sha256": digest,
                "content_type": content_type,
                "describes": describes,
                **more,
            }
        )

    def add_json(self, path: str, data: Any, *, describes: str) -> None:
        payload = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode()
        self.zip.writestr(path, payload, compress_type=zipfile.ZIP_DEFLATED)
        self._entry(path, len(payload), hashlib.sha256(payload).hexdigest(), "application/json", describes)

    def add_stored_file(self, media: _Media, *, beat: Callable[[], None]) -> None:
        """Copies one stored file in chunks; FileNotFoundError when the storage has lost it."""
        digest, size = hashlib.sha256(), 0
        # The source opens first: a lost file leaves no entry behind.
        with (
            export_storage().open(media.name, "rb") as source,
            self.zip.open(media.path, "w", force_zip64=True) as sink,
        ):
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                sink.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                beat()
        self._entry(
            media.path,
            size,
            digest.hexdigest(),
            media.content_type,
            media.describes,
            post_id=str(media.post_id),
        )

    def add_manifest(self, manifest: dict) -> None:
        manifest["files"] = self.entries
        self.zip.writestr(
            "manifest.json",
            json.dumps(manifest, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode(),
            compress_type=zipfile.ZIP_DEFLATED,
        )


class _TakenOver(Exception):
    """The export is no longer this attempt's to build (taken again, or its account is gone)."""


class _Progress:
    """Reports progress (the heartbeat) at most every REPORT_EVERY_S; stops the build when the
    export is no longer this attempt's."""

    def __init__(self, export: DataExport, total_steps: int):
        self.export_id, self.attempt = export.pk, export.attempts
        self.total, self.done, self.last = max(1, total_steps), 0, 0.0

    def step(self) -> None:
        self.done += 1
        self.beat()

    def beat(self, *, now: bool = False) -> None:
        moment = time.monotonic()
        if not now and moment - self.last < REPORT_EVERY_S:
            return
        self.last = moment
        # Complete only when the export is stored: `complete_export` says 1.0.
        progress = min(0.99, self.done / self.total)
        if not report_export_progress(export_id=self.export_id, attempt=self.attempt, progress=progress):
            raise _TakenOver()


def write_archive(*, export: DataExport, target: IO[bytes]) -> None:
    """Writes the export's ZIP to `target`: media first (so posts.json names only the files that
    made it), then every JSON section, then the manifest."""
    user = User.objects.get(pk=export.user_id)
    posts = list(Post.objects.filter(author_id=user.pk).order_by("created_at", "id"))
    media = _media_of(posts)
    sections = registered_sections()
    progress = _Progress(export, total_steps=len(media) + len(sections) + 1)
    progress.beat(now=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zip_file:
        archive = _Archive(zip_file)
        files, missing = _copy_media(archive, media, progress)
        archive.add_json(
            "posts.json",
            [_post_record(post, files) for post in posts],
            describes="every post of this account (drafts, published, removed): prompt, caption, "
            "status, times, lineage, cameos, licensed IP, label, and the paths of its media files",
        )
        progress.step()
        for section in sections:
            archive.add_json(section.path, section.collect(user), describes=section.describes)
            progress.step()
        archive.add_manifest(_manifest_header(export, user, missing))


def _copy_media(archive: _Archive, media: list[_Media], progress: _Progress) -> tuple[dict, list[dict]]:
    """Copies the posts' files; the ZIP paths of those copied, by (post, field), and those lost."""
    files, missing = {}, []
    for item in media:
        try:
            archive.add_stored_file(item, beat=progress.beat)
        except FileNotFoundError:
            missing.append({"path": item.path, "describes": item.describes, "reason": "not in storage"})
        else:
            files[(item.post_id, item.field)] = item.path
        progress.step()
    return files, missing


def _manifest_header(export: DataExport, user: User, missing: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "export_id": str(export.pk),
        "user": {"id": str(user.pk), "username": user.username},
        "created_at": _iso(timezone.now()),
        "about": (
            "Everything this account made here, as JSON beside the media. `files` lists every "
            "file of this archive but manifest.json itself, with its size in bytes, its sha256 "
            "and what it holds. Ids are the service's own; the JSON files refer to each other by "
            "them. No biometric data is included (no verification video, face crop or template)."
        ),
        "missing": missing,
    }


def _size_and_digest(handle: IO[bytes]) -> tuple[int, str]:
    handle.seek(0)
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def stored_name(export: DataExport, attempt: int) -> str:
    return f"exports/{export.user_id}/{export.token}-{attempt}.zip"


def _write_and_store(export: DataExport) -> tuple[str, int, str]:
    """Builds the ZIP in a scratch file and stores it; its stored name, size and sha256."""
    with tempfile.NamedTemporaryFile(prefix="export-", suffix=".zip") as scratch:
        write_archive(export=export, target=scratch)
        scratch.flush()
        size, digest = _size_and_digest(scratch)
        scratch.seek(0)
        name = export_storage().save(stored_name(export, export.attempts), File(scratch))
    return name, size, digest


def execute_export(export_id: int) -> DataExport | None:
    """The worker's job: claim, build and store the ZIP, finish. The export as it then stands, or
    None when there was nothing to do (finished already, or another worker runs it) or it was
    taken from this worker during the build."""
    export = start_export(export_id=export_id)
    if export is None:
        return None
    attempt = export.attempts
    try:
        name, size, digest = _write_and_store(export)
    except _TakenOver:
        logger.info("export %s attempt %s was taken over; stopped", export_id, attempt)
        return None
    except Exception as exc:  # noqa: BLE001 - whatever broke, the export ends with a reason
        logger.exception("export %s failed", export_id)
        return end_export(
            export_id=export_id, attempt=attempt, code="export_failed", message=f"{type(exc).__name__}: {exc}"
        )
    return complete_export(export_id=export_id, attempt=attempt, name=name, size_bytes=size, sha256=digest)


# ---- the export's life: requested, sent, claimed, finished, expired ------------------------------


def _in_progress(export: DataExport) -> Conflict:
    return Conflict(
        "An export of this account is already being made.",
        code="export_in_progress",
        details={"id": str(export.pk)},
    )


def request_export(*, user: User) -> DataExport:
    """A new export, sent to a worker once committed; 409 `export_in_progress` (details `{id}`)
    while another one of the account's is queued or running."""
    try:
        with transaction.atomic():
            in_flight = DataExport.objects.filter(user_id=user.pk, status__in=EXPORT_IN_FLIGHT).first()
            if in_flight is not None:
                raise _in_progress(in_flight)
            export = DataExport.objects.create(user_id=user.pk, token=secrets.token_hex(16))
            # If the broker cannot take it now it waits in the outbox for the periodic dispatcher.
            transaction.on_commit(lambda: dispatch_exports(export_ids=[export.pk]))
    except IntegrityError:
        # A concurrent request made one first (the database allows one in flight per user).
        in_flight = DataExport.objects.filter(user_id=user.pk, status__in=EXPORT_IN_FLIGHT).first()
        if in_flight is None:
            raise
        raise _in_progress(in_flight) from None
    return export


def _send(export_id: int) -> None:
    from social.tasks import build_export

    build_export.apply_async(args=[export_id], retry=False)


def dispatch_exports(*, export_ids: Sequence[int] | None = None) -> list[int]:
    """The outbox of exports (core.outbox): sends queued exports never sent, or sent
    EXPORT_REDISPATCH_AFTER_S ago and still unclaimed (the message may be lost); the ids sent. A
    claim is idempotent, so an export sent twice is built once."""
    from core.outbox import dispatch_due

    resend_before = timezone.now() - dt.timedelta(seconds=settings.EXPORT_REDISPATCH_AFTER_S)
    due = DataExport.objects.filter(status=ExportStatus.QUEUED).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before)
    )
    if export_ids is not None:
        due = due.filter(pk__in=list(export_ids))
    return dispatch_due(due=due, sent_field="dispatched_at", send=_send)


def _is_stale(export: DataExport, now: dt.datetime) -> bool:
    limit = dt.timedelta(seconds=settings.EXPORT_STALE_AFTER_S)
    return export.heartbeat_at is None or now - export.heartbeat_at > limit


def _worker_lost(export: DataExport) -> None:
    _finish(
        export,
        ExportStatus.FAILED,
        code="worker_lost",
        message=f"The worker stopped during each of {export.attempts} attempts.",
    )


def start_export(*, export_id: int) -> DataExport | None:
    """Claims the export for this worker, or None when there is nothing to do. An export whose
    worker died is claimed again with its attempt counted; past EXPORT_MAX_ATTEMPTS it fails
    with `worker_lost`."""
    with transaction.atomic():
        export = DataExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None or export.status not in EXPORT_IN_FLIGHT:
            return None
        now = timezone.now()
        if export.status == ExportStatus.RUNNING and not _is_stale(export, now):
            return None
        if export.attempts >= settings.EXPORT_MAX_ATTEMPTS:
            _worker_lost(export)
            return None
        export.status = ExportStatus.RUNNING
        export.attempts += 1
        export.started_at = export.heartbeat_at = now
        export.progress = 0.0
        export.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress"])
    return export


def report_export_progress(*, export_id: int, attempt: int, progress: float) -> bool:
    """Stores progress and a heartbeat for the worker running `attempt` and tells the owner's
    websockets; False when the export is no longer that attempt's (taken again after this worker
    stalled, or its account deleted): the worker stops then."""
    progress = max(0.0, min(1.0, progress))
    with transaction.atomic():
        updated = DataExport.objects.filter(
            pk=export_id, status=ExportStatus.RUNNING, attempts=attempt
        ).update(progress=progress, heartbeat_at=timezone.now())
        if updated:
            user_id = DataExport.objects.values_list("user_id", flat=True).get(pk=export_id)
            push_to_user(
                user_id, {"type": "export.progress", "id": str(export_id), "progress": round(progress, 3)}
            )
    return bool(updated)


def _finished_event(export: DataExport) -> dict:
    return {"type": "export.finished", "id": str(export.pk), "status": export.status}


def _finish(export: DataExport, status: str, *, code: str = "", message: str = "") -> None:
    """Must run inside a transaction holding the export's row lock."""
    now = timezone.now()
    export.status = status
    export.error_code, export.error_message = code, message[:1000]
    export.finished_at = now
    if status == ExportStatus.READY:
        export.progress = 1.0
        export.expires_at = now + dt.timedelta(seconds=settings.EXPORT_TTL_S)
    export.save(
        update_fields=[
            *("status", "error_code", "error_message", "finished_at", "progress", "expires_at"),
            *("file", "size_bytes", "sha256"),
        ]
    )
    push_to_user(export.user_id, _finished_event(export))


def _stored_names(export: DataExport) -> set[str]:
    """Every name the export's attempts may have stored a ZIP under."""
    names = {stored_name(export, attempt) for attempt in range(1, export.attempts + 1)}
    if export.file.name:
        names.add(export.file.name)
    return names


def _delete_files(names: Iterable[str]) -> None:
    storage = export_storage()
    for name in names:
        storage.delete(name)


def _delete_files_on_commit(names: Iterable[str]) -> None:
    names = sorted(names)
    transaction.on_commit(lambda: _delete_files(names))


def _taken_over(export: DataExport | None, attempt: int) -> bool:
    return export is None or export.status != ExportStatus.RUNNING or export.attempts != attempt


def complete_export(
    *, export_id: int, attempt: int, name: str, size_bytes: int, sha256: str
) -> DataExport | None:
    """Marks the export ready with its stored ZIP, for the worker running `attempt`; a ZIP no
    export will point at (taken over meanwhile, or the account deleted) is deleted."""
    with transaction.atomic():
        export = DataExport.objects.select_for_update().filter(pk=export_id).first()
        if _taken_over(export, attempt):
            _delete_files_on_commit([name])
            return export
        export.file.name, export.size_bytes, export.sha256 = name, size_bytes, sha256
        _finish(export, ExportStatus.READY)
        _delete_files_on_commit(_stored_names(export) - {name})  # what earlier attempts left
    return export


def end_export(*, export_id: int, attempt: int, code: str, message: str) -> DataExport | None:
    """Fails the export, if `attempt` still runs it, and deletes whatever its attempts stored."""
    with transaction.atomic():
        export = DataExport.objects.select_for_update().filter(pk=export_id).first()
        if _taken_over(export, attempt):
            return export
        _delete_files_on_commit(_stored_names(export))
        _finish(export, ExportStatus.FAILED, code=code, message=message)
    return export


def reap_stale_exports() -> list[int]:
    """Exports left `running` by a worker that died: queued again (back in the outbox, and sent)
    while attempts remain, failed with `worker_lost` after that. Returns the ids queued again."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.EXPORT_STALE_AFTER_S)
    stale_ids = list(
        DataExport.objects.filter(status=ExportStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    requeued = []
    for export_id in stale_ids:
        with transaction.atomic():
            export = DataExport.objects.select_for_update(skip_locked=True).filter(pk=export_id).first()
            if (
                export is None
                or export.status != ExportStatus.RUNNING
                or not _is_stale(export, timezone.now())
            ):
                continue
            if export.attempts >= settings.EXPORT_MAX_ATTEMPTS:
                _delete_files_on_commit(_stored_names(export))
                _worker_lost(export)
                continue
            export.status, export.progress, export.dispatched_at = ExportStatus.QUEUED, 0.0, None
            export.save(update_fields=["status", "progress", "dispatched_at"])
            requeued.append(export.pk)
    if requeued:
        dispatch_exports(export_ids=requeued)
    return requeued


def delete_expired_exports(*, limit: int = 500) -> list[int]:
    """Deletes the ZIPs of ready exports past `expires_at` and marks them `expired`. The files go
    first: a pass that dies halfway leaves exports still `ready` that the next pass finishes."""
    with transaction.atomic():
        due = list(
            DataExport.objects.select_for_update(skip_locked=True)
            .filter(status=ExportStatus.READY, expires_at__lte=timezone.now())
            .order_by("expires_at", "pk")[:limit]
        )
        _delete_files(name for export in due for name in _stored_names(export))
        DataExport.objects.filter(pk__in=[export.pk for export in due]).update(
            status=ExportStatus.EXPIRED, file=""
        )
    return [export.pk for export in due]


def stored_file_names_of(*, user_id: int) -> list[str]:
    """Every ZIP the user's exports may have stored (their account is being deleted)."""
    return sorted(
        name for export in DataExport.objects.filter(user_id=user_id) for name in _stored_names(export)
    )


# ---- reads ---------------------------------------------------------------------------------------


def exports_of(*, user: User) -> QuerySet[DataExport]:
    return DataExport.objects.filter(user_id=user.pk)


def get_own_export(*, user: User, export_id) -> DataExport:
    """The user's export; 404 for anyone else's, as for one that does not exist."""
    try:
        return exports_of(user=user).get(pk=int(export_id))
    except (DataExport.DoesNotExist, TypeError, ValueError, OverflowError) as exc:
        raise NotFound() from exc
