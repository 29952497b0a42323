from rest_framework import serializers

from cameo.characters import MAX_IMAGES
from cameo.models import HANDLE_MAX_LENGTH, CameoKind, Permission, ProtectedReason
from core.serializers import IdField, StrictSerializer
from social.api.serializers import UserSummarySerializer


class CameoSerializer(serializers.Serializer):
    id = IdField()
    owner = UserSummarySerializer()
    kind = serializers.ChoiceField(choices=CameoKind.choices)
    handle = serializers.CharField(
        allow_null=True, help_text="`@handle` in prompts; null once rejected or erased"
    )
    display_name = serializers.CharField()
    status = serializers.CharField()
    rejection_reason = serializers.CharField(allow_null=True)
    permission = serializers.CharField()
    instructions = serializers.CharField()
    restrictions = serializers.ListField(child=serializers.CharField())
    encoder = serializers.CharField()
    verified_as = IdField(source="verified_as_id", allow_null=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, cameo):
        data = super().to_representation(cameo)
        data["rejection_reason"] = cameo.rejection_reason or None
        return data


class CameoPageSerializer(serializers.Serializer):
    results = CameoSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class TrendingCameoSerializer(CameoSerializer):
    trending_score = serializers.SerializerMethodField(
        help_text="published appearances, each weighing exp(-age / 3.5 days)"
    )

    def get_trending_score(self, cameo) -> float:
        return round(cameo.trending_score(), 3)


class TrendingCameoPageSerializer(serializers.Serializer):
    results = TrendingCameoSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


HANDLE_HELP = (
    "3-30 of a-z, 0-9, _ and . (not first, last or twice in a row), case-insensitive; unique across "
    "persons and characters"
)


class CameoCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=CameoKind.choices, default=CameoKind.PERSON)
    video = serializers.FileField(
        required=False, help_text="a person's verification video, or a character's 3-15 s video"
    )
    images = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        min_length=1,
        max_length=MAX_IMAGES,
        help_text=f"a character's 1-{MAX_IMAGES} photos (JPEG, PNG or WebP), instead of a video",
    )
    handle = serializers.CharField(
        max_length=HANDLE_MAX_LENGTH + 1,
        required=False,
        help_text=f"{HANDLE_HELP}; derived from the username (a person) or display name when absent",
    )
    display_name = serializers.CharField(max_length=64)
    permission = serializers.ChoiceField(choices=Permission.choices, default=Permission.ONLY_ME)
    instructions = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CameoUpdateSerializer(StrictSerializer):
    handle = serializers.CharField(
        max_length=HANDLE_MAX_LENGTH + 1,
        required=False,
        help_text=f"{HANDLE_HELP}; the old handle stays reserved to its owner for 30 days",
    )
    display_name = serializers.CharField(max_length=64, required=False)
    permission = serializers.ChoiceField(choices=Permission.choices, required=False)
    instructions = serializers.CharField(max_length=500, required=False, allow_blank=True)
    restrictions = serializers.ListField(
        child=serializers.CharField(max_length=80), required=False, max_length=50
    )


class CameoRequestCreateSerializer(StrictSerializer):
    message = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class CameoRequestSerializer(serializers.Serializer):
    id = IdField()
    requester = UserSummarySerializer()
    message = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class CameoRequestPageSerializer(serializers.Serializer):
    results = CameoRequestSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class AuditEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_username", allow_null=True)
    action = serializers.CharField()
    before = serializers.DictField()
    after = serializers.DictField()
    consent_version = serializers.IntegerField()

    def to_representation(self, entry):
        data = super().to_representation(entry)
        data["actor"] = entry.actor_username or None
        return data


class AuditPageSerializer(serializers.Serializer):
    results = AuditEntrySerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


# --- protected likenesses (staff) -------------------------------------------------------------


class ProtectedLikenessSerializer(serializers.Serializer):
    """Never the reference photo nor its template: biometrics stay out of every response."""

    id = IdField()
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    has_reference = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ProtectedLikenessPageSerializer(serializers.Serializer):
    results = ProtectedLikenessSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ProtectedLikenessCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50, default=list
    )
    reason = serializers.ChoiceField(choices=ProtectedReason.choices)
    reference = serializers.FileField(required=False, help_text="a photo showing exactly one face")


class ProtectedLikenessUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    reason = serializers.ChoiceField(choices=ProtectedReason.choices, required=False)
    reference = serializers.FileField(required=False, help_text="a photo showing exactly one face")


class CameoVerifiedAsSerializer(StrictSerializer):
    protected_likeness_id = serializers.CharField(allow_null=True, max_length=30)
