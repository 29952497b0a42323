from django.conf import settings
from rest_framework import serializers

from core.serializers import IdField, StrictSerializer
from generation.models import AspectRatio, Generation, GenerationMode
from generation.services import MAX_PROMPT_CHARS, MAX_STITCH_SOURCES
from generation.storyboards import MAX_SHOTS, MIN_SHOTS, ShotRequest
from social.models import Post


def _cameo_ids_field():
    # The limit of cameos per job (3, cameo.mentions) is the service's 422 `too_many_cameos`; this
    # bound only keeps absurd lists out.
    return serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, default=list, max_length=10
    )


class ShotCreateSerializer(StrictSerializer):
    prompt = serializers.CharField(min_length=1, max_length=MAX_PROMPT_CHARS, trim_whitespace=True)
    duration_s = serializers.IntegerField(min_value=1, max_value=settings.GENERATION_MAX_DURATION_S)
    cameo_ids = _cameo_ids_field()


class GenerationCreateSerializer(StrictSerializer):
    """One video (`prompt`, `duration_s`), or a storyboard (`shots`, each with its own)."""

    prompt = serializers.CharField(
        min_length=1, max_length=MAX_PROMPT_CHARS, trim_whitespace=True, required=False
    )
    duration_s = serializers.IntegerField(
        min_value=1, max_value=settings.GENERATION_MAX_DURATION_S, required=False
    )
    shots = ShotCreateSerializer(many=True, required=False, min_length=MIN_SHOTS, max_length=MAX_SHOTS)
    aspect_ratio = serializers.ChoiceField(choices=AspectRatio.choices)
    audio = serializers.BooleanField(required=False, default=True)
    cameo_ids = _cameo_ids_field()
    remix_of = serializers.CharField(required=False, allow_null=True, max_length=32, default=None)
    # A stitch is asked for at POST /posts/stitch.
    mode = serializers.ChoiceField(
        choices=[choice for choice in GenerationMode.choices if choice[0] != GenerationMode.STITCH],
        required=False,
        allow_null=True,
        default=None,
    )
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**31 - 1, default=None
    )

    def validate_remix_of(self, value):
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise serializers.ValidationError("Not a post id.") from exc

    def validate(self, data):
        if "shots" in data:
            extra = [name for name in ("prompt", "duration_s") if name in data]
            if data.get("cameo_ids"):
                extra.append("cameo_ids")
            if extra:
                raise serializers.ValidationError(
                    {name: ["A storyboard gives this per shot."] for name in extra}
                )
            data["shots"] = [ShotRequest(**shot) for shot in data["shots"]]
            data["prompt"], data["duration_s"] = "", 0
            return data
        missing = {name: ["This field is required."] for name in ("prompt", "duration_s") if name not in data}
        if missing:
            raise serializers.ValidationError(missing)
        return data


class StitchCreateSerializer(StrictSerializer):
    post_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        min_length=2,
        max_length=MAX_STITCH_SOURCES,
    )
    caption = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=Post._meta.get_field("caption").max_length
    )


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ShotSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    duration_s = serializers.IntegerField()
    cameo_ids = serializers.ListField(child=IdField(), source="likeness_ids")
    status = serializers.CharField()
    progress = serializers.FloatField()


class GenerationSerializer(serializers.ModelSerializer):
    id = IdField()
    shots = ShotSerializer(many=True, read_only=True)
    cameo_ids = serializers.SerializerMethodField()
    inherited_cameo_ids = serializers.SerializerMethodField()
    remix_of = IdField(source="remix_of_id", allow_null=True)
    sources = serializers.ListField(child=IdField(), source="source_ids")
    post_id = IdField(allow_null=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = Generation
        fields = [
            "id",
            "status",
            "progress",
            "prompt",
            "mode",
            "duration_s",
            "aspect_ratio",
            "cameo_ids",
            "inherited_cameo_ids",
            "remix_of",
            "sources",
            "shots",
            "audio",
            "seed",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "post_id",
        ]
        read_only_fields = fields

    def get_cameo_ids(self, job) -> list[str]:
        return [str(cameo_id) for cameo_id in job.cameo_ids]

    def get_inherited_cameo_ids(self, job) -> list[str]:
        """The cameos the video carries from its source, authorised like the named ones."""
        return [
            str(entry["cameo_id"]) for entry in job.cameo_consents if entry.get("inherited_from") is not None
        ]

    def get_error(self, job) -> GenerationErrorSerializer(allow_null=True):  # type: ignore[valid-type]
        if not job.error_code or job.status == "succeeded":
            return None
        return {"code": job.error_code, "message": job.error_message}


class GenerationPageSerializer(serializers.Serializer):
    results = GenerationSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ProvenanceSerializer(serializers.Serializer):
    post_id = IdField()
    content_id = serializers.UUIDField()
    record = serializers.JSONField()
    created_at = serializers.DateTimeField()


class VerifyRequestSerializer(StrictSerializer):
    file = serializers.FileField()


class VerifyMatchSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=["metadata", "watermark", "fingerprint"])
    score = serializers.FloatField(min_value=0, max_value=1)


class VerifyResultSerializer(serializers.Serializer):
    generated_here = serializers.BooleanField()
    post_id = serializers.CharField(allow_null=True)
    content_id = serializers.CharField(allow_null=True)
    label = serializers.JSONField(allow_null=True)
    watermark_found = serializers.BooleanField()
    metadata_found = serializers.BooleanField()
    match = VerifyMatchSerializer(allow_null=True)
