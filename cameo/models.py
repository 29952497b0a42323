"""Cameos: a verified likeness (a person's face, or a character: a pet, an object, a drawing, an
invented persona) and the consent that governs its use.

Biometric data (the template, the face crop, the verification video, a character's uploaded
images and reference crops) lives only in `Cameo` and in
the private biometrics storage (`core.storage.biometric_storage`, never under MEDIA_ROOT and with no
URL) under random names that carry neither the cameo's nor the owner's id; the names are recorded
on the cameo, so erasing a cameo deletes exactly its files. Audit entries keep what changed, never
biometrics.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid

import numpy as np
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

from cameo.identity import TEMPLATE_DIMENSIONS
from core.storage import biometric_storage


class CameoStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    DELETED = "deleted", "Deleted"


class CameoKind(models.TextChoices):
    PERSON = "person", "Person"
    CHARACTER = "character", "Character"


# A handle (`@handle` in prompts): 3-30 of [a-z0-9_.], no dot at either end nor two in a row (so a
# sentence's full stop after a mention is never part of it). Lower case only: stored handles are
# lower case, so uniqueness is case-insensitive. The one definition: the database's check, the API's
# validation and the mention parser (cameo/mentions.py) all derive from it.
HANDLE_BODY = r"[a-z0-9_]+(?:\.[a-z0-9_]+)*"
HANDLE_MIN_LENGTH, HANDLE_MAX_LENGTH = 3, 30
HANDLE_PATTERN = rf"^(?=.{{{HANDLE_MIN_LENGTH},{HANDLE_MAX_LENGTH}}}$){HANDLE_BODY}$"


class Permission(models.TextChoices):
    ONLY_ME = "only_me", "Only me"
    APPROVED = "approved", "Approved people"
    MUTUALS = "mutuals", "Mutuals"
    EVERYONE = "everyone", "Everyone"


# Wider permissions admit more people; narrowing (a lower rank) bumps the consent version.
PERMISSION_RANK = {
    Permission.ONLY_ME: 0,
    Permission.APPROVED: 1,
    Permission.MUTUALS: 2,
    Permission.EVERYONE: 3,
}


class RejectionReason(models.TextChoices):
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    FACE_TOO_SMALL = "face_too_small"
    LOW_QUALITY = "low_quality"
    INCONSISTENT_IDENTITY = "inconsistent_identity"
    LIVENESS_FAILED = "liveness_failed"
    LIKENESS_ALREADY_CLAIMED = "likeness_already_claimed"
    UNSUPPORTED_MEDIA = "unsupported_media"
    # Characters only.
    HUMAN_FACE = "human_face"
    SUBJECT_TOO_SMALL = "subject_too_small"


def biometric_name(cameo: Cameo, filename: str) -> str:
    """A random name: nothing in it leads back to the cameo or its owner, nor to the next name."""
    return f"cameos/{uuid.uuid4().hex}{os.path.splitext(filename)[1].lower()}"


# Kept for 0001_initial, which imports them; they name files the same way.
verification_path = face_crop_path = biometric_name


class ProtectedReason(models.TextChoices):
    PUBLIC_FIGURE = "public_figure", "Public figure"
    DECEASED = "deceased", "Deceased"
    BY_REQUEST = "by_request", "By request"


def protected_reference_name(likeness: ProtectedLikeness, filename: str) -> str:
    """A random name in the private storage: nothing in it names the person."""
    return f"protected/{uuid.uuid4().hex}{os.path.splitext(filename)[1].lower()}"


class ProtectedLikeness(models.Model):
    """A real person whose likeness nobody may generate, unless staff verified a cameo as theirs.

    Staff keep this registry (cameo.services). A prompt naming `name` or an alias is refused
    (cameo.moderation), and generated frames are compared with the reference face's template
    (cameo.likeness). The reference photo is biometric: private storage, random name, no URL.
    """

    name = models.CharField(max_length=100)
    aliases = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    reason = models.CharField(max_length=16, choices=ProtectedReason.choices)
    reference = models.FileField(
        upload_to=protected_reference_name, storage=biometric_storage, max_length=300, blank=True
    )
    template_vector = VectorField(dimensions=TEMPLATE_DIMENSIONS, null=True, blank=True)
    template_dim = models.PositiveSmallIntegerField(default=0)
    encoder = models.CharField(max_length=32, blank=True, default="")
    encoder_version = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "protected likenesses"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reason__in=["public_figure", "deceased", "by_request"]),
                name="protected_likeness_reason_valid",
            ),
            models.UniqueConstraint(Lower("name"), name="protected_likeness_name_unique"),
            models.CheckConstraint(
                condition=models.Q(template_vector__isnull=True) | ~models.Q(reference=""),
                name="protected_likeness_template_has_reference",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_reference(self) -> bool:
        return bool(self.reference)


# Trending: each cameo keeps a count of its published appearances that decays exponentially with
# time constant TRENDING_TAU_S (a week-old appearance weighs e^-2), stored as `trending_key`, the
# natural log of that count as of TRENDING_EPOCH: ln(count at t) + (t - epoch) / tau. The count now
# is exp(key - (now - epoch) / tau), so ordering by the key is ordering by the decayed count, at any
# time, without rewriting any row as time passes (and an index can serve it). Only cameos with an
# appearance published within TRENDING_WINDOW_S trend at all.
TRENDING_TAU_S = 3.5 * 86400
TRENDING_WINDOW_S = 7 * 86400
TRENDING_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def trending_clock(at: dt.datetime) -> float:
    """(at - epoch) / tau: the log-weight of an appearance published at `at`."""
    return (at - TRENDING_EPOCH).total_seconds() / TRENDING_TAU_S


class Cameo(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameos")
    kind = models.CharField(max_length=10, choices=CameoKind.choices, default=CameoKind.PERSON)
    # Given at enrollment (services.start_enrollment); null once the cameo is rejected or erased (the
    # handle is then released: ReleasedHandle). Rows made without the services may have none.
    handle = models.CharField(max_length=HANDLE_MAX_LENGTH, null=True, blank=True)
    display_name = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=CameoStatus.choices, default=CameoStatus.PROCESSING)
    rejection_reason = models.CharField(
        max_length=32, choices=RejectionReason.choices, blank=True, default=""
    )
    permission = models.CharField(max_length=10, choices=Permission.choices, default=Permission.ONLY_ME)
    instructions = models.CharField(max_length=500, blank=True, default="")
    restrictions = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    consent_version = models.PositiveIntegerField(default=1)
    # Biometrics: erased together by services.erase_cameo.
    template_vector = VectorField(dimensions=TEMPLATE_DIMENSIONS, null=True, blank=True)
    template_dim = models.PositiveSmallIntegerField(default=0)
    template_spread = models.FloatField(null=True, blank=True)
    template_version = models.PositiveIntegerField(default=0)
    encoder = models.CharField(max_length=32, blank=True, default="")
    encoder_version = models.CharField(max_length=64, blank=True, default="")
    face_crop = models.FileField(
        upload_to=biometric_name, storage=biometric_storage, max_length=300, blank=True
    )
    verification_video = models.FileField(
        upload_to=biometric_name, storage=biometric_storage, max_length=300, blank=True
    )
    # A character's uploaded images, until enrollment ends, and the reference crops it keeps (names
    # in the private storage, the best first). Erased with the cameo.
    source_images = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    reference_images = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    # See TRENDING_TAU_S. Null until an appearance is published.
    trending_key = models.FloatField(null=True, blank=True)
    trending_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The outbox of enrollments: when the analysis was last sent to the broker (null: not yet).
    enrollment_sent_at = models.DateTimeField(null=True, blank=True)
    # Set by staff only (services.verify_cameo_as): this cameo is that protected person, so prompts
    # and outputs showing them are allowed when it is part of the job. SET_NULL, not PROTECT:
    # erased cameos keep their row forever, so PROTECT would make an entry undeletable; and once
    # the entry is gone no rule needs the verification (services.delete_protected_likeness audits
    # each cameo it clears).
    verified_as = models.ForeignKey(
        ProtectedLikeness, null=True, blank=True, on_delete=models.SET_NULL, related_name="cameos"
    )

    class Meta:
        indexes = [
            models.Index(fields=["owner", "status"], name="cameo_owner_status_idx"),
            HnswIndex(
                name="cameo_template_hnsw",
                fields=["template_vector"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            # GET /cameos/trending walks this in order and applies the consent rule to each row.
            models.Index(
                fields=["-trending_key", "-id"],
                name="cameo_trending_idx",
                condition=models.Q(trending_key__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["processing", "active", "rejected", "deleted"]),
                name="cameo_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["person", "character"]), name="cameo_kind_valid"
            ),
            models.UniqueConstraint(Lower("handle"), name="cameo_handle_unique"),
            models.CheckConstraint(
                condition=models.Q(handle__isnull=True) | models.Q(handle__regex=HANDLE_PATTERN),
                name="cameo_handle_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(permission__in=["only_me", "approved", "mutuals", "everyone"]),
                name="cameo_permission_valid",
            ),
            # An active person has an identity template, an active character its reference crops.
            models.CheckConstraint(
                condition=~models.Q(status="active")
                | models.Q(kind="person", template_vector__isnull=False)
                | (models.Q(kind="character") & ~models.Q(reference_images=[])),
                name="cameo_active_has_template",
            ),
            # A character has no face template: it is never compared with faces (no likeness claim,
            # no output scan).
            models.CheckConstraint(
                condition=models.Q(kind="person") | models.Q(template_vector__isnull=True),
                name="cameo_character_has_no_template",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="rejected") | ~models.Q(rejection_reason=""),
                name="cameo_rejected_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"cameo {self.pk} of {self.owner_id} ({self.status})"

    def trending_score(self, now: dt.datetime | None = None) -> float:
        """The decayed count of published appearances now (see TRENDING_TAU_S)."""
        if self.trending_key is None:
            return 0.0
        return math.exp(self.trending_key - trending_clock(now or timezone.now()))

    @property
    def template(self) -> np.ndarray | None:
        """The template in its encoder's own dimension (storage pads it to the widest encoder)."""
        if self.template_vector is None:
            return None
        return np.asarray(self.template_vector, dtype=np.float32)[: self.template_dim]


class CameoGrant(models.Model):
    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="grants")
    grantee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameo_grants"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cameo", "grantee"], name="cameo_grant_unique")]

    def __str__(self) -> str:
        return f"{self.grantee_id} may use cameo {self.cameo_id}"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    GRANTED = "granted", "Granted"
    DECLINED = "declined", "Declined"


class CameoRequest(models.Model):
    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="requests")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameo_requests"
    )
    message = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cameo", "requester"],
                condition=models.Q(status="pending"),
                name="cameo_request_one_pending",
            )
        ]
        indexes = [models.Index(fields=["cameo", "-created_at"], name="cameo_request_cameo_idx")]

    def __str__(self) -> str:
        return f"{self.requester_id} asks for cameo {self.cameo_id}"


class CameoAudit(models.Model):
    """Append-only: who changed what about a cameo's consent, and when. Never holds biometrics.

    The cameo reference is kept as a plain id so the trail outlives the cameo's erasure.
    """

    cameo_id_value = models.BigIntegerField(db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=40)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    consent_version = models.PositiveIntegerField(default=1)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["cameo_id_value", "-at", "-id"], name="cameo_audit_cameo_idx")]

    def __str__(self) -> str:
        return f"{self.action} on cameo {self.cameo_id_value}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)


class Appearance(models.Model):
    """A post that uses a cameo, with the consent version the use relied on."""

    post = models.ForeignKey("social.Post", on_delete=models.CASCADE, related_name="appearances")
    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="appearances")
    consent_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # When the post was published with this cameo in it: set once, when the appearance is counted
    # in the cameo's trending score (services.count_published_appearances).
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "cameo"], name="appearance_unique")]
        indexes = [models.Index(fields=["cameo", "-created_at", "-id"], name="appearance_cameo_idx")]

    def __str__(self) -> str:
        return f"cameo {self.cameo_id} in post {self.post_id}"


# A released handle stays its last owner's for this long: nobody else may take it meanwhile.
HANDLE_REUSE_AFTER = dt.timedelta(days=30)


class ReleasedHandle(models.Model):
    """A handle a cameo gave up (renamed, rejected or erased) and when. Its last owner may take it
    back at any time; anyone else only HANDLE_REUSE_AFTER later, so a name people know is never
    handed to a stranger overnight. Taking it back (or over) deletes the row. When the owner's
    account is deleted `owner` becomes null: then nobody may take it back early."""

    handle = models.CharField(max_length=HANDLE_MAX_LENGTH)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("handle"), name="released_handle_unique")]

    def __str__(self) -> str:
        return f"@{self.handle} released {self.released_at:%Y-%m-%d}"
