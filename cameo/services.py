"""Every write and rule about cameos: enrollment, consent, appearances and erasure."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from pgvector.django import CosineDistance
from PIL import Image

from cameo import enrollment
from cameo.identity import get_encoder, pad_template
from cameo.models import (
    PERMISSION_RANK,
    Appearance,
    Cameo,
    CameoAudit,
    CameoGrant,
    CameoRequest,
    CameoStatus,
    Permission,
    RejectionReason,
    RequestStatus,
    cameo_prefix,
)
from cameo.signals import cameo_revoked
from core.errors import ApiError, Conflict, Forbidden, NotFound, RuleRefusal, TooLarge
from core.themes import match_theme
from social.models import Post, User
from social.selectors import are_mutuals, is_blocked_either_way

logger = logging.getLogger(__name__)

# Serialises likeness-claim checks across workers: two enrollments of one face cannot both win.
CLAIM_LOCK_KEY = 0x6361_6D65  # "came"


def cameo_not_permitted(cameo_id) -> ApiError:
    return ApiError(
        "You may not use this cameo.",
        code="cameo_not_permitted",
        status_code=403,
        details={"cameo": str(cameo_id)},
    )


def _audit(*, cameo: Cameo, actor: User | None, action: str, before: dict, after: dict) -> None:
    CameoAudit.objects.create(
        cameo_id_value=cameo.pk,
        owner_id=cameo.owner_id,
        actor=actor,
        actor_username=actor.username if actor else "",
        action=action,
        before=before,
        after=after,
        consent_version=cameo.consent_version,
    )


def _announce_revocation(cameo: Cameo) -> None:
    cameo_id, version = cameo.pk, cameo.consent_version
    transaction.on_commit(
        lambda: cameo_revoked.send(sender=Cameo, cameo_id=cameo_id, consent_version=version)
    )


# --- enrollment -------------------------------------------------------------------------------


def start_enrollment(
    *,
    owner: User,
    video,
    display_name: str,
    permission: str = Permission.ONLY_ME,
    instructions: str = "",
    enqueue: bool = True,
) -> Cameo:
    """Checks the upload (size, then container and duration, by content), stores it, and queues
    the analysis (unless `enqueue` is false: the caller runs `enroll` itself). Nothing is decoded
    here beyond the container header."""
    size = getattr(video, "size", None)
    if size is not None and size > settings.CAMEO_VIDEO_MAX_BYTES:
        raise TooLarge(
            f"The video is larger than {settings.CAMEO_VIDEO_MAX_BYTES} bytes.",
            details={"max_bytes": settings.CAMEO_VIDEO_MAX_BYTES},
        )
    _check_permission_for_owner(owner=owner, permission=permission)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "upload"
        with local.open("wb") as handle:
            for chunk in video.chunks() if hasattr(video, "chunks") else [video.read()]:
                handle.write(chunk)
        enrollment.check_upload(local, local.stat().st_size)
        with transaction.atomic():
            cameo = Cameo.objects.create(
                owner=owner,
                display_name=display_name,
                permission=permission,
                instructions=instructions,
            )
            with local.open("rb") as handle:
                cameo.verification_video.save("video", File(handle), save=True)
            _audit(
                cameo=cameo,
                actor=owner,
                action="created",
                before={},
                after={"permission": permission, "instructions": instructions, "restrictions": []},
            )
            from cameo.tasks import enroll_cameo

            cameo_id = cameo.pk
            if enqueue:
                transaction.on_commit(lambda: enroll_cameo.delay(cameo_id))
    return cameo


def enroll(*, cameo_id: int) -> Cameo | None:
    """Analyses a processing cameo's video; activates or rejects it. Runs again harmlessly."""
    cameo = Cameo.objects.filter(pk=cameo_id).first()
    if cameo is None or cameo.status != CameoStatus.PROCESSING or not cameo.verification_video:
        return cameo
    encoder = get_encoder()
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "video"
        with cameo.verification_video.open("rb") as source, local.open("wb") as target:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                target.write(chunk)
        try:
            frames = enrollment.sample_frames(local, settings.CAMEO_SAMPLE_FRAMES)
        except enrollment.VideoTooLong:
            measurements = {"too_long": True, "max_s": settings.CAMEO_VIDEO_MAX_SECONDS}
            return _reject(
                cameo_id=cameo.pk, reason=RejectionReason.UNSUPPORTED_MEDIA, measurements=measurements
            )
        except enrollment.UndecodableVideo:
            return _reject(cameo_id=cameo.pk, reason=RejectionReason.UNSUPPORTED_MEDIA, measurements={})
    analysis = enrollment.analyse_frames(frames, encoder)
    if analysis.rejection:
        return _reject(cameo_id=cameo.pk, reason=analysis.rejection, measurements=analysis.measurements)
    return _activate(cameo_id=cameo.pk, analysis=analysis, encoder=encoder)


def _reject(*, cameo_id: int, reason: str, measurements: dict) -> Cameo | None:
    with transaction.atomic():
        cameo = Cameo.objects.select_for_update().filter(pk=cameo_id).first()
        if cameo is None or cameo.status != CameoStatus.PROCESSING:
            return cameo
        cameo.status = CameoStatus.REJECTED
        cameo.rejection_reason = reason
        cameo.save(update_fields=["status", "rejection_reason", "updated_at"])
        _audit(
            cameo=cameo, actor=None, action="rejected", before={}, after={"reason": reason, **measurements}
        )
        _delete_prefix_on_commit(cameo.pk)
        Cameo.objects.filter(pk=cameo.pk).update(verification_video="")
    return cameo


def nearest_claimed_likeness(
    *, template, encoder_name: str, exclude_owner_id: int | None, encoder_version: str | None = None
):
    """The closest active cameo (of another owner, if `exclude_owner_id`) with the same encoder
    (name, and version when given: another model version is another space), annotated with its
    cosine distance; None when there is none.

    The search walks the HNSW index (`cameo_template_hnsw`). Its filters (status, encoder, owner)
    are applied to what the index yields, so pgvector's iterative scan keeps walking until enough
    rows pass them; relaxed order may swap near-equal neighbours, hence the few candidates sorted
    here.
    """
    query = Cameo.objects.filter(
        status=CameoStatus.ACTIVE, encoder=encoder_name, template_vector__isnull=False
    )
    if encoder_version is not None:
        query = query.filter(encoder_version=encoder_version)
    if exclude_owner_id is not None:
        query = query.exclude(owner_id=exclude_owner_id)
    candidates = (
        query.annotate(distance=CosineDistance("template_vector", pad_template(template)))
        .order_by("distance")
        .only("id", "owner_id")
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", [str(settings.CAMEO_HNSW_EF_SEARCH)]
            )
        found = list(candidates[:NEAREST_CANDIDATES])
    return min(found, key=lambda cameo: cameo.distance, default=None)


# Candidates fetched per nearest-neighbour search (see nearest_claimed_likeness).
NEAREST_CANDIDATES = 4


def _activate(*, cameo_id: int, analysis: enrollment.Analysis, encoder) -> Cameo | None:
    crop = io.BytesIO()
    Image.fromarray(analysis.face_crop).save(crop, format="PNG")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK_KEY])
        cameo = Cameo.objects.select_for_update().filter(pk=cameo_id).first()
        if cameo is None or cameo.status != CameoStatus.PROCESSING:
            return cameo
        nearest = nearest_claimed_likeness(
            template=analysis.template,
            encoder_name=encoder.name,
            encoder_version=encoder.version,
            exclude_owner_id=cameo.owner_id,
        )
        if nearest is not None and nearest.distance <= settings.CAMEO_MATCH_MAX_DISTANCE:
            measurements = {**analysis.measurements, "claimed_distance": round(float(nearest.distance), 4)}
            return _reject(
                cameo_id=cameo.pk, reason=RejectionReason.LIKENESS_ALREADY_CLAIMED, measurements=measurements
            )
        cameo.template_vector = pad_template(analysis.template)
        cameo.template_dim = int(analysis.template.shape[0])
        cameo.template_spread = analysis.spread
        cameo.template_version = F("template_version") + 1
        cameo.encoder = encoder.name
        cameo.encoder_version = encoder.version
        cameo.status = CameoStatus.ACTIVE
        cameo.face_crop.save("face.png", ContentFile(crop.getvalue()), save=False)
        cameo.save()
        cameo.refresh_from_db()
        _audit(cameo=cameo, actor=None, action="activated", before={}, after=analysis.measurements)
    return cameo


# --- consent ----------------------------------------------------------------------------------


def effective_permission(cameo: Cameo) -> str:
    """A minor's cameo never reaches beyond mutuals, whatever is stored."""
    if cameo.permission == Permission.EVERYONE and cameo.owner.is_minor:
        return Permission.MUTUALS
    return cameo.permission


def may_use(*, user: User, cameo: Cameo) -> bool:
    if cameo.status != CameoStatus.ACTIVE:
        return False
    if user.pk == cameo.owner_id:
        return True
    if is_blocked_either_way(user_id=user.pk, other_id=cameo.owner_id):
        return False
    permission = effective_permission(cameo)
    if permission == Permission.EVERYONE:
        return True
    if permission == Permission.ONLY_ME:
        return False
    if CameoGrant.objects.filter(cameo=cameo, grantee=user).exists():
        return True
    return permission == Permission.MUTUALS and are_mutuals(user_id=user.pk, other_id=cameo.owner_id)


def authorize_cameo_use(*, user: User, cameo: Cameo | None) -> int:
    """The one place that decides whether `user` may use `cameo` now.

    Returns the consent version the decision relied on; anything authorised against an older
    version is refused when rechecked (see consent_still_holds). Unknown, inactive and forbidden
    cameos are refused alike, so the refusal reveals nothing.
    """
    if cameo is None or not may_use(user=user, cameo=cameo):
        raise cameo_not_permitted(getattr(cameo, "pk", ""))
    return cameo.consent_version


def consent_still_holds(*, user: User, cameo_id: int, consent_version: int) -> bool:
    cameo = Cameo.objects.select_related("owner").filter(pk=cameo_id).first()
    if cameo is None or cameo.consent_version != consent_version:
        return False
    return may_use(user=user, cameo=cameo)


def check_cameo_restrictions(*, cameo: Cameo, prompt: str) -> None:
    """Refuses a prompt that touches a theme the cameo's owner refuses."""
    match = match_theme(prompt, list(cameo.restrictions))
    if match is not None:
        raise RuleRefusal(
            f"The owner of this cameo does not allow “{match.theme}”.",
            code="prompt_rejected",
            details={"cameo": str(cameo.pk), "theme": match.theme},
        )


def _check_permission_for_owner(*, owner: User, permission: str) -> None:
    if permission == Permission.EVERYONE and owner.is_minor:
        raise RuleRefusal(
            "A minor's cameo can be shared with mutuals at most.",
            code="permission_not_allowed",
            details={"permission": ["A minor's cameo cannot be used by everyone."]},
        )


def _owned(*, actor: User, cameo: Cameo) -> None:
    if cameo.owner_id != actor.pk:
        raise NotFound()


CONSENT_FIELDS = ("permission", "instructions", "restrictions", "display_name")


def update_cameo(*, actor: User, cameo: Cameo, **changes) -> Cameo:
    """Changes consent and presentation. Narrowing (a smaller audience, a new restriction, other
    instructions) bumps the consent version, so anything authorised before is refused on recheck."""
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().select_related("owner").get(pk=cameo.pk)
        _owned(actor=actor, cameo=locked)
        if locked.status == CameoStatus.DELETED:
            raise NotFound()
        if "permission" in changes:
            _check_permission_for_owner(owner=locked.owner, permission=changes["permission"])
        if "restrictions" in changes:
            changes["restrictions"] = list(
                dict.fromkeys(t.strip() for t in changes["restrictions"] if t.strip())
            )
        before = {name: getattr(locked, name) for name in CONSENT_FIELDS if name in changes}
        after = {name: value for name, value in changes.items() if name in CONSENT_FIELDS}
        changed = {name for name in after if before[name] != after[name]}
        if not changed:
            return locked
        narrowing = (
            (
                "permission" in changed
                and PERMISSION_RANK[after["permission"]] < PERMISSION_RANK[before["permission"]]
            )
            or ("restrictions" in changed and set(after["restrictions"]) - set(before["restrictions"]))
            or "instructions" in changed
        )
        for name in changed:
            setattr(locked, name, after[name])
        if narrowing:
            locked.consent_version += 1
        locked.save()
        _audit(
            cameo=locked,
            actor=actor,
            action="updated",
            before={name: before[name] for name in changed},
            after={name: after[name] for name in changed},
        )
        if narrowing:
            _announce_revocation(locked)
    return locked


def grant_use(*, actor: User, cameo: Cameo, grantee: User) -> bool:
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
        _owned(actor=actor, cameo=locked)
        if grantee.pk == locked.owner_id:
            raise ApiError("You need no grant for your own cameo.", code="invalid")
        if is_blocked_either_way(user_id=actor.pk, other_id=grantee.pk):
            raise Forbidden("You cannot grant use to a blocked user.", code="blocked")
        _, created = CameoGrant.objects.get_or_create(cameo=locked, grantee=grantee)
        CameoRequest.objects.filter(cameo=locked, requester=grantee, status=RequestStatus.PENDING).update(
            status=RequestStatus.GRANTED
        )
        if created:
            _audit(
                cameo=locked, actor=actor, action="granted", before={}, after={"grantee": grantee.username}
            )
    return created


def revoke_grant(*, actor: User, cameo: Cameo, grantee: User) -> bool:
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
        _owned(actor=actor, cameo=locked)
        deleted, _ = CameoGrant.objects.filter(cameo=locked, grantee=grantee).delete()
        if deleted:
            locked.consent_version += 1
            locked.save(update_fields=["consent_version", "updated_at"])
            _audit(
                cameo=locked,
                actor=actor,
                action="grant_revoked",
                before={"grantee": grantee.username},
                after={},
            )
            _announce_revocation(locked)
    return bool(deleted)


def request_use(*, requester: User, cameo: Cameo, message: str = "") -> CameoRequest:
    from social.services import notify

    with transaction.atomic():
        locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
        if locked.status != CameoStatus.ACTIVE or is_blocked_either_way(
            user_id=requester.pk, other_id=locked.owner_id
        ):
            raise NotFound()
        if requester.pk == locked.owner_id:
            raise ApiError("This is your own cameo.", code="invalid")
        existing = CameoRequest.objects.filter(
            cameo=locked, requester=requester, status=RequestStatus.PENDING
        ).first()
        if existing:
            return existing
        request = CameoRequest.objects.create(cameo=locked, requester=requester, message=message)
        notify(
            user=locked.owner_id,
            kind="cameo_request",
            actor=requester,
            data={"cameo_id": str(locked.pk), "request_id": str(request.pk)},
        )
    return request


# --- appearances ------------------------------------------------------------------------------


def _use_entries(uses: Iterable) -> list[tuple[int, int]]:
    entries = []
    for use in uses:
        if isinstance(use, dict):
            entries.append((int(use["cameo_id"]), int(use["consent_version"])))
        else:
            cameo, version = use
            entries.append((int(getattr(cameo, "pk", cameo)), int(version)))
    return entries


def record_appearances(*, post: Post, uses: Iterable) -> list[Appearance]:
    """Links a post to the cameos it uses, with the consent version each use relied on, and makes
    the post visible to those cameos' owners. `uses`: (cameo, version) pairs or dicts with
    `cameo_id` and `consent_version`."""
    entries = _use_entries(uses)
    if not entries:
        return []
    with transaction.atomic():
        cameos = {
            c.pk: c for c in Cameo.objects.select_related("owner").filter(pk__in=[e[0] for e in entries])
        }
        appearances = [
            Appearance.objects.get_or_create(
                post=post, cameo_id=cameo_id, defaults={"consent_version": version}
            )[0]
            for cameo_id, version in entries
            if cameo_id in cameos
        ]
        locked = Post.objects.select_for_update().get(pk=post.pk)
        owners = list(
            dict.fromkeys(
                [*locked.cameo_owner_ids, *(cameos[e[0]].owner_id for e in entries if e[0] in cameos)]
            )
        )
        refs = {ref["id"]: ref for ref in locked.cameo_refs}
        for cameo_id, _ in entries:
            if cameo_id in cameos:
                refs.setdefault(
                    str(cameo_id), {"id": str(cameo_id), "owner_username": cameos[cameo_id].owner.username}
                )
        locked.cameo_owner_ids = owners
        locked.cameo_refs = list(refs.values())
        locked.save(update_fields=["cameo_owner_ids", "cameo_refs"])
        post.cameo_owner_ids, post.cameo_refs = locked.cameo_owner_ids, locked.cameo_refs
    return appearances


def refuse_publish_without_consent(post: Post) -> None:
    """Publish check: every cameo in the post must still be usable by its author as consented.
    A fixed number of queries whatever the number of cameos: the appearances, then which of them the author may
    still use (`selectors.usable_cameos`, the rules of `may_use` in SQL) at which consent version."""
    from cameo.selectors import usable_cameos

    appearances = list(Appearance.objects.filter(post_id=post.pk).values_list("cameo_id", "consent_version"))
    if not appearances:
        return
    author = post.author
    still_consenting = set(
        usable_cameos(user=author)
        .filter(pk__in=[cameo_id for cameo_id, _version in appearances])
        .values_list("pk", "consent_version")
    )
    for cameo_id, consent_version in appearances:
        if (cameo_id, consent_version) not in still_consenting:
            raise Conflict(
                "A cameo in this post no longer consents to it.",
                code="consent_revoked",
                details={"cameo": str(cameo_id)},
            )


# --- erasure ----------------------------------------------------------------------------------


def _delete_prefix_on_commit(cameo_id: int) -> None:
    def delete() -> None:
        delete_storage_prefix(cameo_prefix(cameo_id))

    transaction.on_commit(delete)


def delete_storage_prefix(prefix: str) -> None:
    """Deletes every file under `prefix` in the default storage."""
    try:
        directories, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        default_storage.delete(f"{prefix}/{name}")
    for directory in directories:
        delete_storage_prefix(f"{prefix}/{directory}")
    if hasattr(default_storage, "path"):  # local disk keeps empty folders; object stores have none
        with contextlib.suppress(OSError):
            os.rmdir(default_storage.path(prefix))


def erase_cameo(*, actor: User | None, cameo: Cameo) -> Cameo:
    """Deletes the template, face crop and verification video now, in the database and in storage;
    keeps the row (status deleted) for appearances and the audit trail; frees the likeness."""
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
        if actor is not None:
            _owned(actor=actor, cameo=locked)
        if locked.status == CameoStatus.DELETED:
            return locked
        before = {"status": locked.status, "permission": locked.permission}
        locked.status = CameoStatus.DELETED
        locked.template_vector = None
        locked.template_dim = 0
        locked.template_spread = None
        locked.face_crop = ""
        locked.verification_video = ""
        locked.consent_version += 1
        locked.deleted_at = timezone.now()
        locked.save()
        CameoGrant.objects.filter(cameo=locked).delete()
        CameoRequest.objects.filter(cameo=locked, status=RequestStatus.PENDING).update(
            status=RequestStatus.DECLINED
        )
        _audit(cameo=locked, actor=actor, action="deleted", before=before, after={"status": "deleted"})
        _delete_prefix_on_commit(locked.pk)
        _announce_revocation(locked)
    return locked


def erase_all_cameos_of(*, user: User) -> None:
    """For account deletion: inside the deleting transaction, before the user's rows go."""
    for cameo in Cameo.objects.filter(owner=user).exclude(status=CameoStatus.DELETED):
        erase_cameo(actor=None, cameo=cameo)
