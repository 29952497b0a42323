"""Rights holders, their IP with versioned policies, licences, and the revenue ledger.

The ledger tables are append-only: a journal entry's postings sum to zero per currency, checked for
the postings of each INSERT statement (migration 0003), and postings can be neither updated nor
deleted (0002). Ledger rows keep plain ids of posts and people (no foreign keys), so deleting an
account or a post never rewrites the books.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from pgvector.django import VectorField

EMBEDDING_DIMENSIONS = 384
MAX_REVENUE_SHARE_BPS = 5000


class RightsHolder(models.Model):
    """An organisation that owns characters; only staff-verified ones can license IP."""

    name = models.CharField(max_length=120)
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("name"), name="rights_holder_name_unique_ci")]

    def __str__(self) -> str:
        return self.name


class MemberRole(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class RightsHolderMember(models.Model):
    rights_holder = models.ForeignKey(RightsHolder, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rights_roles")
    role = models.CharField(max_length=8, choices=MemberRole.choices, default=MemberRole.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rights_holder", "user"], name="rights_member_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "member"]), name="rights_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} of {self.rights_holder_id}"


class IntellectualProperty(models.Model):
    """A registered character or world. `current_policy` always points at its newest policy version."""

    rights_holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="ips")
    name = models.CharField(max_length=120)
    aliases = ArrayField(models.CharField(max_length=120), default=list, blank=True)
    description = models.TextField(max_length=2000, blank=True, default="")
    # all-MiniLM-L6-v2 embedding of the description, for semantic detection in prompts.
    description_embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    current_policy = models.ForeignKey(
        "IpPolicy", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "IP"
        verbose_name_plural = "IP"

    def __str__(self) -> str:
        return self.name


class PolicyStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"


class IpPolicy(models.Model):
    """One version of an IP's policy. Rows are never changed: a change is a new version."""

    ip = models.ForeignKey(IntellectualProperty, on_delete=models.CASCADE, related_name="policies")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=PolicyStatus.choices, default=PolicyStatus.OPTED_OUT)
    allow_cameos = models.BooleanField(default=False)
    disallowed_themes = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    revenue_share_bps = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ip", "version"], name="ip_policy_version_unique"),
            models.CheckConstraint(
                condition=models.Q(revenue_share_bps__lte=MAX_REVENUE_SHARE_BPS), name="ip_policy_share_max"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["opted_in", "opted_out"]), name="ip_policy_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ip_id} v{self.version} {self.status}"


class IpLicence(models.Model):
    """An accepted use of an IP in a post, under the policy version that was in force."""

    post = models.ForeignKey("social.Post", on_delete=models.CASCADE, related_name="ip_licences")
    ip = models.ForeignKey(IntellectualProperty, on_delete=models.PROTECT, related_name="licences")
    policy = models.ForeignKey(IpPolicy, on_delete=models.PROTECT, related_name="licences")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "ip"], name="ip_licence_post_ip_unique")]
        indexes = [models.Index(fields=["ip", "-created_at", "-id"], name="ip_licence_ip_idx")]

    def __str__(self) -> str:
        return f"post {self.post_id} uses {self.ip_id} v{self.policy_id}"


# ---- the ledger ----


class AccountOwner(models.TextChoices):
    PLATFORM = "platform", "Platform"
    RIGHTS_HOLDER = "rights_holder", "Rights holder"
    USER = "user", "User"
    # Where revenue comes from (the ad network, the payment processor): its balance is the negative
    # of everything received, so the books sum to zero.
    EXTERNAL = "external", "External source"


class LedgerAccount(models.Model):
    """One account per party and currency. Balances are sums of postings, never stored."""

    owner_type = models.CharField(max_length=16, choices=AccountOwner.choices)
    owner_id = models.BigIntegerField(default=0)  # 0 for the platform and the external source
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_type", "owner_id", "currency"], name="ledger_account_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="ledger_account_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner_type}:{self.owner_id}:{self.currency}"


class EventKind(models.TextChoices):
    AD = "ad", "Ad"
    TIP = "tip", "Tip"
    CREDIT = "credit", "Paid credit"
    REFUND = "refund", "Refund"


class RevenueEvent(models.Model):
    """A revenue event as received; `event_id` is the client's idempotency key."""

    event_id = models.CharField(max_length=100, unique=True)
    post_id = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=8, choices=EventKind.choices)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversal"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        # Granted by an operator to a service account (the ad server) that is not staff.
        permissions = [("record_revenue_events", "Can record revenue events through the API")]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind="refund", reverses__isnull=False, amount_minor__lt=0))
                | (~models.Q(kind="refund") & models.Q(reverses__isnull=True, amount_minor__gt=0)),
                name="revenue_event_refund_shape",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["ad", "tip", "credit", "refund"]),
                name="revenue_event_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.event_id


class JournalEntry(models.Model):
    event = models.OneToOneField(RevenueEvent, on_delete=models.PROTECT, related_name="entry")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"entry {self.pk} for {self.event_id}"


class SplitRole(models.TextChoices):
    SOURCE = "source", "Source of the money"
    PLATFORM = "platform", "Platform"
    RIGHTS_HOLDER = "rights_holder", "Rights holder"
    CAMEO_OWNER = "cameo_owner", "Cameo owner"
    REMIX_SOURCE = "remix_source", "Remix source"
    CREATOR = "creator", "Creator"


class Posting(models.Model):
    """One line of a journal entry. `position` keeps the split order; post, IP and time are copied
    from the entry so statements read one table with one index."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="postings")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    role = models.CharField(max_length=16, choices=SplitRole.choices)
    position = models.PositiveSmallIntegerField()
    post_id = models.BigIntegerField()
    ip_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "position"], name="posting_entry_position_unique"),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="posting_account_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.amount_minor} {self.currency}"
