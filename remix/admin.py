from django import forms
from django.contrib import admin

from remix import services
from remix.models import (
    MAX_REVENUE_SHARE_BPS,
    IntellectualProperty,
    IpLicence,
    IpPolicy,
    JournalEntry,
    LedgerAccount,
    PolicyStatus,
    Posting,
    RevenueEvent,
    RightsHolder,
    RightsHolderMember,
)


class MemberInline(admin.TabularInline):
    model = RightsHolderMember
    raw_id_fields = ("user",)
    extra = 0


@admin.register(RightsHolder)
class RightsHolderAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "verified", "verified_at", "created_at")
    list_filter = ("verified",)
    search_fields = ("name",)
    inlines = [MemberInline]


class PolicyInline(admin.TabularInline):
    """Policy versions are history: shown, never edited. The form above writes a new version."""

    model = IpPolicy
    fields = (
        "version",
        "status",
        "allow_cameos",
        "disallowed_themes",
        "revenue_share_bps",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None):
        return False


class IpAdminForm(forms.ModelForm):
    policy_status = forms.ChoiceField(choices=PolicyStatus.choices, initial=PolicyStatus.OPTED_OUT)
    allow_cameos = forms.BooleanField(required=False)
    disallowed_themes = forms.CharField(required=False, help_text="comma-separated themes")
    revenue_share_bps = forms.IntegerField(min_value=0, max_value=MAX_REVENUE_SHARE_BPS, initial=0)

    class Meta:
        model = IntellectualProperty
        fields = ("rights_holder", "name", "aliases", "description")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        policy = self.instance.current_policy if self.instance.pk else None
        if policy is not None:
            self.initial.update(
                policy_status=policy.status,
                allow_cameos=policy.allow_cameos,
                disallowed_themes=", ".join(policy.disallowed_themes),
                revenue_share_bps=policy.revenue_share_bps,
            )

    def clean_rights_holder(self):
        holder = self.cleaned_data["rights_holder"]
        if holder is not None and not holder.verified:
            # The same rule as remix.services._create_ip, shown on the form.
            raise forms.ValidationError("Verify the rights holder before registering its IP.")
        return holder

    def policy(self) -> dict:
        data = self.cleaned_data
        return {
            "status": data["policy_status"],
            "allow_cameos": data["allow_cameos"],
            "disallowed_themes": [t.strip() for t in data["disallowed_themes"].split(",") if t.strip()],
            "revenue_share_bps": data["revenue_share_bps"],
        }


@admin.register(IntellectualProperty)
class IntellectualPropertyAdmin(admin.ModelAdmin):
    form = IpAdminForm
    list_display = ("id", "name", "rights_holder", "policy_version", "policy_status", "created_at")
    search_fields = ("name", "rights_holder__name")
    list_select_related = ("rights_holder", "current_policy")
    inlines = [PolicyInline]

    def get_readonly_fields(self, request, obj=None):
        return ("rights_holder",) if obj is not None else ()

    @admin.display(description="policy")
    def policy_version(self, ip):
        return ip.current_policy.version if ip.current_policy else None

    @admin.display(description="status")
    def policy_status(self, ip):
        return ip.current_policy.status if ip.current_policy else None

    def save_model(self, request, obj, form, change):
        saved = services.save_ip_from_admin(
            actor=request.user,
            ip=obj,
            policy=form.policy(),
        )
        obj.pk = saved.pk


@admin.register(IpLicence)
class IpLicenceAdmin(admin.ModelAdmin):
    list_display = ("id", "post", "ip", "policy", "created_at")
    raw_id_fields = ("post", "ip", "policy")


class ReadOnlyAdmin(admin.ModelAdmin):
    """The books are append-only; the admin only reads them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RevenueEvent)
class RevenueEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "post_id", "kind", "amount_minor", "currency", "created_at")
    list_filter = ("kind", "currency")
    search_fields = ("event_id",)


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("position", "role", "account", "amount_minor", "currency", "ip_id")
    readonly_fields = fields
    can_delete = False
    extra = 0


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "created_at")
    inlines = [PostingInline]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "owner_type", "owner_id", "currency", "created_at")
    list_filter = ("owner_type", "currency")
