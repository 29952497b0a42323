"""Every write and rule about cameos: enrollment, consent, appearances and erasure."""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Abs, Coalesce, Exp, Greatest, Ln, Lower
from django.utils import timezone
from pgvector.django import CosineDistance
from PIL import Image, ImageOps

from cameo import characters, enrollment, moderation
from cameo.handles import candidate_handles, normalize_handle
from cameo.identity import get_encoder, pad_template
from cameo.models import (
    HANDLE_REUSE_AFTER,
    PERMISSION_RANK,
    Appearance,
    Cameo,
    CameoAudit,
    CameoGrant,
    CameoKind,
    CameoRequest,
    CameoStatus,
    Permission,
    ProtectedLikeness,
    ProtectedReason,
    RejectionReason,
    ReleasedHandle,
    RequestStatus,
    biometric_name,
    trending_clock,
)
from cameo.selectors import require_staff
from cameo.signals import cameo_revoked
from core.errors import ApiError, Conflict, Forbidden, NotFound, RuleRefusal, TooLarge, UnsupportedMedia
from core.storage import biometric_storage
from core.themes import match_theme, normalize_text
from social.models import Post, PostStatus, User
from social.selectors import guardian_controls_for, is_blocked_either_way
from social.services import guardian_control_refusal

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
    display_name: str,
    video=None,
    images: Iterable = (),
    kind: str = CameoKind.PERSON,
    handle: str | None = None,
    permission: str = Permission.ONLY_ME,
    instructions: str = "",
    enqueue: bool = True,
) -> Cameo:
    """Checks the upload, stores it, and queues the analysis (unless `enqueue` is false: the caller
    runs `enroll` itself). A person sends a verification video; a character a 3-15 s video or 1-4
    images (`characters.check_images`). The video is checked by size, then container and
    duration, by content: nothing is decoded here beyond the container header and the images'.

    `handle`: the cameo's `@handle` (409 `handle_taken` when another cameo holds it or another
    owner released it less than 30 days ago); without one, a free one is derived from the owner's
    username (a person) or the display name (a character)."""
    _check_enrollment_media(kind=kind, video=video, images=images)
    if (
        video is not None
        and getattr(video, "size", None) is not None
        and video.size > settings.CAMEO_VIDEO_MAX_BYTES
    ):
        raise TooLarge(
            f"The video is larger than {settings.CAMEO_VIDEO_MAX_BYTES} bytes.",
            details={"max_bytes": settings.CAMEO_VIDEO_MAX_BYTES},
        )
    _check_permission_for_owner(owner=owner, permission=permission)
    moderation.check_instructions(owner=owner, instructions=instructions)
    requested = normalize_handle(handle) if handle else None
    checked_images = characters.check_images(images) if kind == CameoKind.CHARACTER and video is None else []
    with tempfile.TemporaryDirectory() as scratch:
        local = None
        if video is not None:
            local = Path(scratch) / "upload"
            with local.open("wb") as target:
                for chunk in video.chunks() if hasattr(video, "chunks") else [video.read()]:
                    target.write(chunk)
            info = enrollment.check_upload(local, local.stat().st_size)
            if kind == CameoKind.CHARACTER:
                _check_character_duration(info.duration_s)
        stored: list[str] = []
        try:
            with transaction.atomic():
                # Again with the guardian's controls locked until the cameo is stored: a cap set
                # meanwhile either waits for this cameo and lowers it, or is read here.
                _check_permission_for_owner(owner=owner, permission=permission, lock_controls=True)
                chosen = _choose_handle(
                    owner=owner,
                    requested=requested,
                    derive_from=owner.username if kind == CameoKind.PERSON else display_name,
                )
                cameo = Cameo(
                    owner=owner,
                    kind=kind,
                    handle=chosen,
                    display_name=display_name,
                    permission=permission,
                    instructions=instructions,
                )
                if local is not None:
                    with local.open("rb") as source:
                        cameo.verification_video.save("video", File(source), save=False)
                    stored.append(cameo.verification_video.name)
                cameo.source_images = [
                    _store_biometric(image.data, f"image{image.extension}") for image in checked_images
                ]
                stored.extend(cameo.source_images)
                cameo.save()
                _audit(
                    cameo=cameo,
                    actor=owner,
                    action="created",
                    before={},
                    after={
                        "kind": kind,
                        "handle": chosen,
                        "permission": permission,
                        "instructions": instructions,
                        "restrictions": [],
                    },
                )
                cameo_id = cameo.pk
                if enqueue:
                    transaction.on_commit(lambda: dispatch_enrollments(cameo_ids=[cameo_id]))
        except BaseException:
            storage = biometric_storage()
            for name in stored:
                storage.delete(name)
            raise
    return cameo


def _check_enrollment_media(*, kind: str, video, images) -> None:
    """A person: a video. A character: a video or images, not both. 400 `invalid` otherwise."""
    images = list(images)
    if kind == CameoKind.PERSON and (video is None or images):
        raise ApiError(
            "A person enrolls with a verification video.", details={"video": ["A video is required."]}
        )
    if kind == CameoKind.CHARACTER and (video is None) == (not images):
        raise ApiError(
            "A character enrolls with a video or with images.",
            details={"images": [f"Send a video or 1-{characters.MAX_IMAGES} images, not both."]},
        )


def _check_character_duration(duration_s: float) -> None:
    """3-15 s for a character (the upper bound is `enrollment.check_upload`'s). A header without a
    duration passes: the analysis measures the frames' own times."""
    if 0 < duration_s < characters.MIN_VIDEO_SECONDS:
        raise UnsupportedMedia(
            f"A character's video lasts at least {characters.MIN_VIDEO_SECONDS:g} seconds.",
            code="too_short",
            details={"duration_s": round(duration_s, 3), "min_s": characters.MIN_VIDEO_SECONDS},
        )


def _store_biometric(data: bytes, filename: str) -> str:
    """Saves `data` in the private storage under a new random name (models.biometric_name)."""
    return biometric_storage().save(biometric_name(None, filename), ContentFile(data))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _send_enrollment(cameo_id: int) -> None:
    from cameo.tasks import enroll_cameo

    enroll_cameo.apply_async(args=[cameo_id], retry=False)


def dispatch_enrollments(*, cameo_ids: Iterable[int] | None = None) -> list[int]:
    """The outbox of enrollments (core.outbox): sends the analysis of cameos still processing that
    were never sent, or were sent CAMEO_ENROLL_RESEND_AFTER_S ago and are still not analysed (the
    message or its worker was lost). `enroll` runs again harmlessly."""
    from core.outbox import dispatch_due

    resend_before = timezone.now() - dt.timedelta(seconds=settings.CAMEO_ENROLL_RESEND_AFTER_S)
    due = Cameo.objects.filter(status=CameoStatus.PROCESSING).filter(
        Q(enrollment_sent_at__isnull=True) | Q(enrollment_sent_at__lt=resend_before)
    )
    if cameo_ids is not None:
        due = due.filter(pk__in=list(cameo_ids))
    return dispatch_due(due=due, sent_field="enrollment_sent_at", send=_send_enrollment)


def enroll(*, cameo_id: int) -> Cameo | None:
    """Analyses a processing cameo's upload; activates or rejects it. Runs again harmlessly."""
    cameo = Cameo.objects.filter(pk=cameo_id).first()
    if cameo is None or cameo.status != CameoStatus.PROCESSING:
        return cameo
    if not (cameo.verification_video or cameo.source_images):
        return cameo
    encoder = get_encoder()
    try:
        frames = _uploaded_frames(cameo)
    except enrollment.VideoTooLong:
        measurements = {"too_long": True, "max_s": settings.CAMEO_VIDEO_MAX_SECONDS}
        return _reject(cameo_id=cameo.pk, reason=RejectionReason.UNSUPPORTED_MEDIA, measurements=measurements)
    except enrollment.VideoTooShort:
        measurements = {"too_short": True, "min_s": characters.MIN_VIDEO_SECONDS}
        return _reject(cameo_id=cameo.pk, reason=RejectionReason.UNSUPPORTED_MEDIA, measurements=measurements)
    except enrollment.UndecodableVideo:
        return _reject(cameo_id=cameo.pk, reason=RejectionReason.UNSUPPORTED_MEDIA, measurements={})
    if cameo.kind == CameoKind.CHARACTER:
        found = characters.analyse_character(frames, encoder)
        if found.rejection:
            return _reject(cameo_id=cameo.pk, reason=found.rejection, measurements=found.measurements)
        return _activate_character(cameo_id=cameo.pk, analysis=found)
    analysis = enrollment.analyse_frames(frames, encoder)
    if analysis.rejection:
        return _reject(cameo_id=cameo.pk, reason=analysis.rejection, measurements=analysis.measurements)
    return _activate(cameo_id=cameo.pk, analysis=analysis, encoder=encoder)


def _uploaded_frames(cameo: Cameo) -> list[np.ndarray]:
    """The frames to analyse: sampled from the video, or a character's images (UndecodableVideo
    when one cannot be decoded)."""
    if not cameo.verification_video:
        try:
            storage = biometric_storage()
            frames = []
            for name in cameo.source_images:
                with storage.open(name, "rb") as source:
                    frames.append(characters.decode_image(source.read()))
            return frames
        except Exception as exc:  # PIL raises many kinds on malformed data
            raise enrollment.UndecodableVideo(str(exc)) from exc
    min_seconds = characters.MIN_VIDEO_SECONDS if cameo.kind == CameoKind.CHARACTER else 0.0
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "video"
        with cameo.verification_video.open("rb") as source, local.open("wb") as target:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                target.write(chunk)
        return enrollment.sample_frames(local, settings.CAMEO_SAMPLE_FRAMES, min_seconds=min_seconds)


def _reject(*, cameo_id: int, reason: str, measurements: dict) -> Cameo | None:
    """Rejects a processing cameo: its media go (once committed) and its handle is released."""
    with transaction.atomic():
        cameo = Cameo.objects.select_for_update().filter(pk=cameo_id).first()
        if cameo is None or cameo.status != CameoStatus.PROCESSING:
            return cameo
        cameo.status = CameoStatus.REJECTED
        cameo.rejection_reason = reason
        _release_handle_of(cameo)
        _forget_media(cameo)
        cameo.save(update_fields=["status", "rejection_reason", "handle", *_MEDIA_FIELDS, "updated_at"])
        _audit(
            cameo=cameo, actor=None, action="rejected", before={}, after={"reason": reason, **measurements}
        )
    return cameo


# Every field that names a biometric file (see `_forget_media`).
_MEDIA_FIELDS = ["verification_video", "face_crop", "source_images", "reference_images"]


def _forget_media(cameo: Cameo) -> None:
    """Clears every biometric file name on `cameo` (the caller saves it) and deletes the files once
    that is committed."""
    _delete_biometrics_on_commit(
        cameo.verification_video.name, cameo.face_crop.name, *cameo.source_images, *cameo.reference_images
    )
    cameo.verification_video = ""
    cameo.face_crop = ""
    cameo.source_images = []
    cameo.reference_images = []


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
        # Enrollment has ended: the template and the crop stay, the verification video goes.
        _delete_biometrics_on_commit(cameo.verification_video.name)
        cameo.verification_video = ""
        cameo.save()
        cameo.refresh_from_db()
        _audit(cameo=cameo, actor=None, action="activated", before={}, after=analysis.measurements)
    return cameo


def _activate_character(*, cameo_id: int, analysis: characters.CharacterAnalysis) -> Cameo | None:
    """Stores the reference crops and activates the character. No likeness claim: a character
    has no face template (the `cameo_character_has_no_template` constraint)."""
    names = [_store_biometric(_png(crop), "reference.png") for crop in analysis.references]
    kept = False
    try:
        with transaction.atomic():
            cameo = Cameo.objects.select_for_update().filter(pk=cameo_id).first()
            if cameo is None or cameo.status != CameoStatus.PROCESSING:
                return cameo
            # Enrollment has ended: the references stay, the uploaded video or images go.
            _delete_biometrics_on_commit(cameo.verification_video.name, *cameo.source_images)
            cameo.verification_video = ""
            cameo.source_images = []
            cameo.reference_images = names
            cameo.template_version = F("template_version") + 1
            cameo.status = CameoStatus.ACTIVE
            cameo.save()
            cameo.refresh_from_db()
            _audit(cameo=cameo, actor=None, action="activated", before={}, after=analysis.measurements)
            kept = True
    finally:
        if not kept:
            storage = biometric_storage()
            for name in names:
                storage.delete(name)
    return cameo


# --- handles ----------------------------------------------------------------------------------

# Advisory locks on handles (class, hashtext(handle)): whoever claims or releases a handle holds
# its lock until commit. Two claims of a free handle are thus serialised, and the second sees the
# first's row and answers 409, where it would otherwise see nothing, insert, and fail on the unique
# index at the first's commit. (No row to lock exists yet when a handle is free.)
HANDLE_LOCK_CLASS = 0x68616E64  # "hand"


def _handle_taken(handle: str) -> Conflict:
    return Conflict("This handle is taken.", code="handle_taken", details={"handle": handle})


def _by_handle(queryset, handles: Iterable[str]):
    """Rows whose lower(handle) is one of `handles` (lower case): what the unique indexes serve."""
    return queryset.alias(handle_lower=Lower("handle")).filter(handle_lower__in=list(handles))


def _reserved_for_others(handles: Iterable[str], *, owner_id: int):
    """The released handles among `handles` that another owner (or a deleted account) may still
    take back."""
    recent = timezone.now() - HANDLE_REUSE_AFTER
    return (
        _by_handle(ReleasedHandle.objects, handles).filter(released_at__gt=recent).exclude(owner_id=owner_id)
    )


def _lock_handle(handle: str, *, wait: bool = True) -> bool:
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, hashtext(%s))", [HANDLE_LOCK_CLASS, handle])
        return True if wait else bool(cursor.fetchone()[0])


def _claim_handle(*, handle: str, owner_id: int, cameo_id: int | None = None) -> None:
    """Makes `handle` the caller's (under its lock, in the caller's transaction): 409
    `handle_taken` when another cameo holds it or it is reserved for another owner; a released
    entry of it is consumed."""
    holders = _by_handle(Cameo.objects, [handle])
    if cameo_id is not None:
        holders = holders.exclude(pk=cameo_id)
    if holders.exists() or _reserved_for_others([handle], owner_id=owner_id).exists():
        raise _handle_taken(handle)
    _by_handle(ReleasedHandle.objects, [handle]).delete()


def _release_handle_of(cameo: Cameo) -> None:
    """Records the cameo's handle as released by its owner now and clears it (the caller saves)."""
    if not cameo.handle:
        return
    _lock_handle(cameo.handle)
    ReleasedHandle.objects.update_or_create(
        handle=cameo.handle, defaults={"owner_id": cameo.owner_id, "released_at": timezone.now()}
    )
    cameo.handle = None


def _choose_handle(*, owner: User, requested: str | None, derive_from: str) -> str:
    """The requested handle, claimed; or the first free one derived from `derive_from`. In the
    caller's transaction (the handle's lock is held until it commits)."""
    if requested:
        _lock_handle(requested)
        _claim_handle(handle=requested, owner_id=owner.pk)
        return requested
    candidates = candidate_handles(derive_from)
    unavailable = set(_by_handle(Cameo.objects, candidates).values_list("handle", flat=True))
    unavailable |= set(_reserved_for_others(candidates, owner_id=owner.pk).values_list("handle", flat=True))
    for candidate in candidates:
        # Another enrollment deriving the same name skips it rather than waiting for it.
        if candidate in unavailable or not _lock_handle(candidate, wait=False):
            continue
        try:
            _claim_handle(handle=candidate, owner_id=owner.pk)
        except Conflict:
            continue
        return candidate
    raise _handle_taken(candidates[0])


def _rename(cameo: Cameo, handle: str) -> None:
    """Gives the (locked) cameo `handle`, releasing its old one; both locks in one order."""
    for name in sorted({handle, cameo.handle or handle}):
        _lock_handle(name)
    _claim_handle(handle=handle, owner_id=cameo.owner_id, cameo_id=cameo.pk)
    _release_handle_of(cameo)
    cameo.handle = handle


# --- consent ----------------------------------------------------------------------------------


def usable_versions(*, user: User, cameo_ids: Iterable[int]) -> dict[int, int]:
    """{cameo id: current consent version} for those of `cameo_ids` that `user` may use now.

    The rule itself is written once, as SQL, in `selectors.usable_cameos` (which also answers
    `/cameos/usable`); every consent decision in Python asks it, so the two cannot drift. One
    query whatever the number of cameos.
    """
    from cameo.selectors import usable_cameos

    ids = {int(cameo_id) for cameo_id in cameo_ids}
    if not ids:
        return {}
    return dict(usable_cameos(user=user).filter(pk__in=ids).values_list("pk", "consent_version"))


def may_use(*, user: User, cameo: Cameo) -> bool:
    return cameo.pk in usable_versions(user=user, cameo_ids=[cameo.pk])


def authorize_cameo_use(*, user: User, cameo: Cameo | None) -> int:
    """Whether `user` may use `cameo` now: the consent version the decision relied on, or 403
    `cameo_not_permitted`. Unknown, inactive and forbidden cameos are refused alike, so the
    refusal reveals nothing. (A job's cameos, named and inherited, go through
    `cameo.lineage.authorize_likenesses`, the same rule for several at once.)"""
    version = None if cameo is None else usable_versions(user=user, cameo_ids=[cameo.pk]).get(cameo.pk)
    if version is None:
        raise cameo_not_permitted(getattr(cameo, "pk", ""))
    return version


def lapsed_consents(*, user: User, uses: Iterable) -> list[tuple[int, int]]:
    """The (cameo id, consent version) pairs of `uses` that no longer hold for `user`: the cameo is
    no longer usable by them, or its consent changed since. One query. `uses` as in
    `record_appearances`."""
    entries = _use_entries(uses)
    current = usable_versions(user=user, cameo_ids=[cameo_id for cameo_id, _version in entries])
    return [(cameo_id, version) for cameo_id, version in entries if current.get(cameo_id) != version]


def consent_still_holds(*, user: User, cameo_id: int, consent_version: int) -> bool:
    return not lapsed_consents(user=user, uses=[(cameo_id, consent_version)])


def check_cameo_restrictions(*, cameo: Cameo, prompt: str) -> None:
    """Refuses a prompt that touches a theme the cameo's owner refuses."""
    match = match_theme(prompt, list(cameo.restrictions))
    if match is not None:
        raise RuleRefusal(
            f"The owner of this cameo does not allow “{match.theme}”.",
            code="prompt_rejected",
            details={"cameo": str(cameo.pk), "theme": match.theme},
        )


def _check_permission_for_owner(*, owner: User, permission: str, lock_controls: bool = False) -> None:
    """A minor's cameo is never `everyone` (422), nor wider than their guardian's cap (403
    `guardian_control`). `lock_controls`: social.selectors.guardian_controls_for."""
    if permission == Permission.EVERYONE and owner.is_minor:
        raise RuleRefusal(
            "A minor's cameo can be shared with mutuals at most.",
            code="permission_not_allowed",
            details={"permission": ["A minor's cameo cannot be used by everyone."]},
        )
    controls = guardian_controls_for(teen=owner, lock=lock_controls)
    cap = None if controls is None else controls.cameo_permission_cap
    if cap is not None and PERMISSION_RANK[permission] > PERMISSION_RANK[cap]:
        raise guardian_control_refusal(
            control="cameo_permission_cap",
            message=f"Your guardian allows your cameos “{cap}” at most.",
            cap=cap,
        )


def _owned(*, actor: User, cameo: Cameo) -> None:
    if cameo.owner_id != actor.pk:
        raise NotFound()


CONSENT_FIELDS = ("permission", "instructions", "restrictions", "display_name")


def update_cameo(*, actor: User, cameo: Cameo, **changes) -> Cameo:
    """Changes consent and presentation. Narrowing (a smaller audience, a new restriction, other
    instructions) bumps the consent version, so anything authorised before is refused on recheck.
    A new `handle` renames the cameo and changes no consent (409 `handle_taken`); the old handle
    is released: its owner may take it back at any time, anyone else after HANDLE_REUSE_AFTER."""
    handle = changes.pop("handle", None)
    requested = normalize_handle(handle) if handle is not None else None
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().select_related("owner").get(pk=cameo.pk)
        _owned(actor=actor, cameo=locked)
        if locked.status == CameoStatus.DELETED:
            raise NotFound()
        if "permission" in changes:
            _check_permission_for_owner(owner=locked.owner, permission=changes["permission"])
        return _change_consent(locked, actor=actor, changes=changes, requested_handle=requested)


def cap_permissions_by_guardian(teen: User, cap: str, guardian: User) -> list[Cameo]:
    """Lowers each of the teen's cameos wider than `cap` to it, at once: their guardian's control
    (social.guardians, through social.hooks). The same consent change as the owner's own narrowing
    (consent version, pending jobs blocked on recheck), audited as `capped_by_guardian` with the
    guardian as actor. Every cameo of the teen is locked, not only the wider ones: one being
    widened meanwhile holds its row, so this waits for it and lowers it."""
    cameos = (
        Cameo.objects.select_for_update()
        .filter(owner_id=teen.pk)
        .exclude(status=CameoStatus.DELETED)
        .order_by("pk")
    )
    return [
        _change_consent(cameo, actor=guardian, changes={"permission": cap}, action="capped_by_guardian")
        for cameo in cameos
        if PERMISSION_RANK[cameo.permission] > PERMISSION_RANK[cap]
    ]


def _change_consent(
    locked: Cameo, *, actor: User, changes: dict, requested_handle: str | None = None, action: str = "updated"
) -> Cameo:
    """Applies `changes` to a locked cameo as `update_cameo` says, audited as `action`."""
    if "restrictions" in changes:
        changes["restrictions"] = list(dict.fromkeys(t.strip() for t in changes["restrictions"] if t.strip()))
    before = {name: getattr(locked, name) for name in CONSENT_FIELDS if name in changes}
    after = {name: value for name, value in changes.items() if name in CONSENT_FIELDS}
    if requested_handle is not None:
        before["handle"], after["handle"] = locked.handle, requested_handle
    changed = {name for name in after if before[name] != after[name]}
    if not changed:
        return locked
    if "instructions" in changed:
        moderation.check_instructions(
            owner=locked.owner, instructions=after["instructions"], verified_as=locked.verified_as_id
        )
    narrowing = (
        (
            "permission" in changed
            and PERMISSION_RANK[after["permission"]] < PERMISSION_RANK[before["permission"]]
        )
        or ("restrictions" in changed and set(after["restrictions"]) - set(before["restrictions"]))
        or "instructions" in changed
    )
    if "handle" in changed:
        if locked.status == CameoStatus.REJECTED:
            raise Conflict("A rejected cameo takes no handle.", code="cameo_rejected")
        _rename(locked, after["handle"])
    for name in changed - {"handle"}:
        setattr(locked, name, after[name])
    if narrowing:
        locked.consent_version += 1
    locked.save()
    _audit(
        cameo=locked,
        actor=actor,
        action=action,
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
    """Asks the owner to use the cameo; only those who may ask (`selectors.may_ask_for`: never for
    an `only_me` cameo, nor strangers for a minor's); 404 to anyone else."""
    from cameo.selectors import may_ask_for
    from social.services import notify

    with transaction.atomic():
        locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
        if requester.pk == locked.owner_id:
            raise ApiError("This is your own cameo.", code="invalid")
        if not may_ask_for(user=requester, cameo=locked):
            raise NotFound()
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
        if locked.status == PostStatus.PUBLISHED:
            count_published_appearances(post_id=locked.pk)
    return appearances


# --- trending ---------------------------------------------------------------------------------


def count_published_appearances(*, post_id: int, at: dt.datetime | None = None) -> list[int]:
    """Adds the published post's appearances to their cameos' trending scores (see
    models.TRENDING_TAU_S), each once however often this runs: the appearance rows are locked
    and stamped `published_at`, so a concurrent run waits and then finds nothing left to count.
    Returns the cameo ids counted."""
    at = at or timezone.now()
    with transaction.atomic():
        fresh = list(
            Appearance.objects.select_for_update()
            .filter(post_id=post_id, published_at__isnull=True)
            .order_by("pk")
            .values_list("pk", "cameo_id")
        )
        if not fresh:
            return []
        Appearance.objects.filter(pk__in=[pk for pk, _cameo_id in fresh]).update(published_at=at)
        cameo_ids = sorted({cameo_id for _pk, cameo_id in fresh})
        weight = Value(trending_clock(at))
        # key := ln(exp(key) + exp(weight)), computed stably; the first appearance sets it.
        Cameo.objects.filter(pk__in=cameo_ids).update(
            trending_key=Coalesce(
                Greatest(F("trending_key"), weight) + Ln(1 + Exp(-Abs(F("trending_key") - weight))), weight
            ),
            trending_at=Greatest(Coalesce(F("trending_at"), Value(at)), Value(at)),
        )
    return cameo_ids


def uncount_published_appearances(post_ids: Sequence[int]) -> list[int]:
    """Takes the counted appearances of these posts back out of their cameos' trending scores (the
    posts are being taken down or deleted: social.hooks' posts-leaving hook), each once: the rows
    are locked and their `published_at` cleared. Set-based: one read and one write of appearances,
    then one update per cameo concerned, however many posts go (an account's, all at once).
    Returns the cameo ids changed."""
    with transaction.atomic():
        counted = list(
            Appearance.objects.select_for_update()
            .filter(post_id__in=list(post_ids), published_at__isnull=False)
            .order_by("pk")
            .values_list("pk", "cameo_id", "published_at")
        )
        if not counted:
            return []
        Appearance.objects.filter(pk__in=[pk for pk, _cameo_id, _at in counted]).update(published_at=None)
        weights: dict[int, list[float]] = {}
        for _pk, cameo_id, at in counted:
            weights.setdefault(cameo_id, []).append(trending_clock(at))
        for cameo_id in sorted(weights):
            # The cameo's leaving appearances as one weight, ln(sum(exp(w))), computed stably; then
            # key := ln(exp(key) - exp(weight)), and nothing left (to rounding) is no score at all.
            top = max(weights[cameo_id])
            weight = Value(top + math.log(sum(math.exp(w - top) for w in weights[cameo_id])))
            Cameo.objects.filter(pk=cameo_id).update(
                trending_key=Case(
                    When(trending_key__lte=weight + Value(1e-9), then=Value(None)),
                    default=F("trending_key") + Ln(1 - Exp(weight - F("trending_key"))),
                )
            )
    return sorted(weights)


def count_appearances_on_publish(sender, instance: Post, update_fields=None, **kwargs) -> None:
    """`post_save` of a post (connected in CameoConfig.ready): a post saved as published counts
    its appearances, inside the publishing transaction, so a publish that rolls back counts
    nothing. (Publish checks would not do: remixing one's own draft runs them too.)"""
    if kwargs.get("raw"):  # loading fixtures
        return
    if instance.status == PostStatus.PUBLISHED and (update_fields is None or "status" in update_fields):
        count_published_appearances(post_id=instance.pk, at=instance.published_at)


def refuse_publish_without_consent(post: Post) -> None:
    """Publish check: every cameo in the post, named or inherited, must still be usable by its
    author at the consent version the post was made under.

    It locks what the decision rests on first, in the order every consent change takes: the cameo
    rows (a narrowing, a revoked grant, an erasure lock them too), then the people on either side
    of a possible block (`block_user` locks both), and only then does the publish lock the post.
    A concurrent consent change thus either commits before the check reads it or waits for the
    publish to commit. Four queries whatever the number of cameos.
    """
    appearances = list(Appearance.objects.filter(post_id=post.pk).values_list("cameo_id", "consent_version"))
    if not appearances:
        return
    with transaction.atomic():
        owner_ids = list(
            Cameo.objects.select_for_update()
            .filter(pk__in={cameo_id for cameo_id, _version in appearances})
            .order_by("pk")
            .values_list("owner_id", flat=True)
        )
        list(
            User.objects.select_for_update()
            .filter(pk__in={*owner_ids, post.author_id})
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        lapsed = lapsed_consents(user=post.author, uses=appearances)
    if lapsed:
        raise Conflict(
            "A cameo in this post no longer consents to it.",
            code="consent_revoked",
            details={"cameo": str(lapsed[0][0])},
        )


# --- erasure ----------------------------------------------------------------------------------


def _delete_biometrics_on_commit(*names: str) -> None:
    """Deletes the named files from the private storage once the rows forgetting them are committed
    (a rollback keeps both); a failed deletion is logged, not raised, as the commit has happened."""
    names = tuple(name for name in names if name)
    if not names:
        return

    def delete() -> None:
        storage = biometric_storage()
        for name in names:
            storage.delete(name)

    transaction.on_commit(delete, robust=True)


def erase_cameo(*, actor: User | None, cameo: Cameo) -> Cameo:
    """Deletes the template, face crop, verification video and a character's images and reference
    crops now, in the database and in storage; keeps the row (status deleted) for appearances and
    the audit trail; frees the likeness and releases the handle."""
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
        _forget_media(locked)
        _release_handle_of(locked)
        locked.consent_version += 1
        locked.deleted_at = timezone.now()
        locked.save()
        CameoGrant.objects.filter(cameo=locked).delete()
        CameoRequest.objects.filter(cameo=locked, status=RequestStatus.PENDING).update(
            status=RequestStatus.DECLINED
        )
        _audit(cameo=locked, actor=actor, action="deleted", before=before, after={"status": "deleted"})
        _announce_revocation(locked)
    return locked


def erase_all_cameos_of(*, user: User) -> None:
    """For account deletion: inside the deleting transaction, before the user's rows go."""
    for cameo in Cameo.objects.filter(owner=user).exclude(status=CameoStatus.DELETED):
        erase_cameo(actor=None, cameo=cameo)


# --- protected likenesses ---------------------------------------------------------------------

# Formats a reference photo may come in, by what PIL finds in the bytes (never the file name).
REFERENCE_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
# Faces are looked for in the photo scaled down to this longest side: a face the template can use
# survives it, and detection on a camera's full resolution would take seconds and much memory.
REFERENCE_ANALYSIS_SIDE = 1280


@dataclass(frozen=True)
class ReferenceFace:
    """A reference photo that passed its checks: its bytes and the template of its one face."""

    data: bytes
    extension: str
    template: np.ndarray
    encoder: str
    encoder_version: str


def read_reference_face(upload) -> ReferenceFace:
    """Checks a reference photo by its content: 413 `too_large` above PROTECTED_REFERENCE_MAX_BYTES
    (before reading it whole) or PROTECTED_REFERENCE_MAX_PIXELS (before decoding it); 415
    `unsupported_media` unless PIL decodes it as JPEG, PNG or WebP; 422 `no_face` or
    `multiple_faces` unless the configured encoder finds exactly one face."""
    max_bytes = settings.PROTECTED_REFERENCE_MAX_BYTES
    if getattr(upload, "size", None) is not None and upload.size > max_bytes:
        raise TooLarge(f"The reference is larger than {max_bytes} bytes.", details={"max_bytes": max_bytes})
    if hasattr(upload, "seek"):
        upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"The reference is larger than {max_bytes} bytes.", details={"max_bytes": max_bytes})
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in REFERENCE_EXTENSIONS:
                raise UnsupportedMedia("The reference must be a JPEG, PNG or WebP image.")
            extension = REFERENCE_EXTENSIONS[image.format]
            max_pixels = settings.PROTECTED_REFERENCE_MAX_PIXELS
            if image.width * image.height > max_pixels:
                raise TooLarge(
                    f"The reference has more than {max_pixels} pixels.", details={"max_pixels": max_pixels}
                )
            oriented = ImageOps.exif_transpose(image).convert("RGB")
            oriented.thumbnail((REFERENCE_ANALYSIS_SIDE, REFERENCE_ANALYSIS_SIDE))
            pixels = np.asarray(oriented)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnsupportedMedia("The reference is not an image that can be read.") from exc
    encoder = get_encoder()
    faces = encoder.embed(pixels)
    if len(faces) != 1:
        code = "no_face" if not faces else "multiple_faces"
        raise RuleRefusal(
            "The reference must show exactly one face.", code=code, details={"faces": len(faces)}
        )
    return ReferenceFace(
        data=data,
        extension=extension,
        template=faces[0].embedding,
        encoder=encoder.name,
        encoder_version=encoder.version,
    )


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ApiError("A protected likeness needs a name.", details={"name": ["May not be blank."]})
    return cleaned


def _clean_aliases(aliases: Iterable[str], *, name: str) -> list[str]:
    """Spaces collapsed; blanks, repeats and spellings of the name itself (after the theme
    matcher's normalisation) dropped."""
    seen = {normalize_text(name)}
    cleaned = []
    for alias in aliases:
        alias = " ".join(str(alias).split())
        if alias and normalize_text(alias) not in seen:
            seen.add(normalize_text(alias))
            cleaned.append(alias)
    return cleaned


def _check_reason(reason: str) -> None:
    if reason not in ProtectedReason.values:
        raise ApiError(
            "Unknown reason.", details={"reason": [f"One of {', '.join(ProtectedReason.values)}."]}
        )


def _as_reference_face(reference) -> ReferenceFace | None:
    if reference is None or isinstance(reference, ReferenceFace):
        return reference
    return read_reference_face(reference)


def _save_protected(likeness: ProtectedLikeness, *, face: ReferenceFace | None) -> ProtectedLikeness:
    """Stores the reference (if any) under a new random name, then the row; the replaced file is
    deleted once the row forgetting it is committed, a new one at once if the row is not saved."""
    replaced = likeness.reference.name if face is not None else ""
    if face is not None:
        likeness.reference.save(f"reference{face.extension}", ContentFile(face.data), save=False)
        likeness.template_vector = pad_template(face.template)
        likeness.template_dim = int(face.template.shape[0])
        likeness.encoder = face.encoder
        likeness.encoder_version = face.encoder_version
    try:
        with transaction.atomic():
            likeness.save()
            _delete_biometrics_on_commit(replaced)
    except BaseException as exc:
        if face is not None:
            biometric_storage().delete(likeness.reference.name)
        if isinstance(exc, IntegrityError):
            raise Conflict(
                "A protected likeness with this name exists.",
                code="name_taken",
                details={"name": [likeness.name]},
            ) from exc
        raise
    return likeness


def create_protected_likeness(
    *, actor: User, name: str, reason: str, aliases: Iterable[str] = (), reference=None
) -> ProtectedLikeness:
    """A new registry entry (staff only). `reference`: an uploaded face photo (or a ReferenceFace
    read already), checked by read_reference_face before anything is stored."""
    require_staff(actor)
    name = _clean_name(name)
    _check_reason(reason)
    face = _as_reference_face(reference)
    likeness = ProtectedLikeness(name=name, aliases=_clean_aliases(aliases, name=name), reason=reason)
    return _save_protected(likeness, face=face)


def update_protected_likeness(
    *,
    actor: User,
    likeness: ProtectedLikeness,
    name: str | None = None,
    aliases: Iterable[str] | None = None,
    reason: str | None = None,
    reference=None,
) -> ProtectedLikeness:
    """Changes an entry (staff only); a new `reference` replaces the old photo and template."""
    require_staff(actor)
    face = _as_reference_face(reference)  # before the row is locked: finding a face takes a while
    with transaction.atomic():
        locked = ProtectedLikeness.objects.select_for_update().filter(pk=likeness.pk).first()
        if locked is None:
            raise NotFound()
        if name is not None:
            locked.name = _clean_name(name)
        if reason is not None:
            _check_reason(reason)
            locked.reason = reason
        locked.aliases = _clean_aliases(locked.aliases if aliases is None else aliases, name=locked.name)
        return _save_protected(locked, face=face)


def delete_protected_likeness(*, actor: User, likeness: ProtectedLikeness) -> None:
    """Removes an entry (staff only) and, once committed, its reference photo. Cameos verified as
    it lose the verification (nothing needs it any more); each of them gets an audit entry."""
    require_staff(actor)
    with transaction.atomic():
        locked = ProtectedLikeness.objects.select_for_update().filter(pk=likeness.pk).first()
        if locked is None:
            raise NotFound()
        for cameo in Cameo.objects.select_for_update().filter(verified_as=locked):
            _audit(
                cameo=cameo,
                actor=actor,
                action="verified_as_changed",
                before={"verified_as": _likeness_entry(locked)},
                after={"verified_as": None},
            )
        _delete_biometrics_on_commit(locked.reference.name)
        locked.delete()


def _likeness_entry(likeness: ProtectedLikeness | None) -> dict | None:
    return None if likeness is None else {"id": str(likeness.pk), "name": likeness.name}


def verify_cameo_as(*, actor: User, cameo: Cameo, protected_likeness: ProtectedLikeness | None) -> Cameo:
    """Staff state that `cameo` is that protected person (or, with None, that it is nobody in the
    registry). Audited; the consent version is not bumped: the owner's consent is unchanged."""
    require_staff(actor)
    with transaction.atomic():
        locked = Cameo.objects.select_for_update().select_related("owner").filter(pk=cameo.pk).first()
        if locked is None or (protected_likeness is not None and locked.status == CameoStatus.DELETED):
            raise NotFound()
        if protected_likeness is not None:
            protected_likeness = (
                ProtectedLikeness.objects.select_for_update().filter(pk=protected_likeness.pk).first()
            )
            if protected_likeness is None:
                raise NotFound()
        wanted = None if protected_likeness is None else protected_likeness.pk
        if locked.verified_as_id == wanted:
            return locked
        before = _likeness_entry(locked.verified_as)
        locked.verified_as = protected_likeness
        locked.save(update_fields=["verified_as", "updated_at"])
        _audit(
            cameo=locked,
            actor=actor,
            action="verified_as_changed",
            before={"verified_as": before},
            after={"verified_as": _likeness_entry(protected_likeness)},
        )
    return locked
