from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import IdField, StrictSerializer


class RegisterSerializer(StrictSerializer):
    username = serializers.CharField(min_length=3, max_length=30, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True)
    birth_date = serializers.DateField()

    def validate_birth_date(self, value):
        from django.utils import timezone

        today = timezone.localdate()
        if value > today:
            raise serializers.ValidationError("The birth date is in the future.")
        if today.year - value.year > 130:
            raise serializers.ValidationError("The birth date is too far in the past.")
        return value


class RegisteredSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()


class TokenObtainRequestSerializer(StrictSerializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenRefreshRequestSerializer(StrictSerializer):
    refresh = serializers.CharField()


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()


class QuotaSerializer(serializers.Serializer):
    daily_limit = serializers.IntegerField()
    used_today = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    email = serializers.EmailField()
    is_minor = serializers.BooleanField()
    tier = serializers.CharField()
    quota = QuotaSerializer()


class MeUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    bio = serializers.CharField(max_length=500, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class UserSummarySerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()


class UserProfileSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    followers_count = serializers.IntegerField()
    following_count = serializers.IntegerField()
    posts_count = serializers.IntegerField()
    is_following = serializers.BooleanField()
    follows_you = serializers.BooleanField()


class CameoRefSerializer(serializers.Serializer):
    id = IdField()
    owner_username = serializers.CharField(allow_null=True)


class IpRefSerializer(serializers.Serializer):
    id = IdField()
    name = serializers.CharField(allow_null=True)
    rights_holder = serializers.JSONField(allow_null=True)


class AiLabelSerializer(serializers.Serializer):
    content_id = serializers.CharField(allow_null=True)
    provider = serializers.CharField()


def _media_url(field_file, request) -> str | None:
    if not field_file or not field_file.name:
        return None
    url = field_file.storage.url(field_file.name)
    if request is not None and not url.startswith(("http://", "https://")):
        return request.build_absolute_uri(url)
    return url


class PostSerializer(serializers.Serializer):
    """API.md's Post. `liked_by_me` comes from the selector's annotation (no query per post)."""

    id = IdField()
    author = UserSummarySerializer()
    status = serializers.CharField()
    caption = serializers.CharField()
    prompt = serializers.CharField()
    video_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    duration_s = serializers.FloatField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    like_count = serializers.IntegerField()
    comment_count = serializers.IntegerField()
    remix_count = serializers.IntegerField()
    view_count = serializers.IntegerField()
    liked_by_me = serializers.SerializerMethodField()
    remix_of = IdField(source="remix_of_id", allow_null=True)
    root_id = IdField(allow_null=True)
    remix_allowed = serializers.BooleanField()
    cameos = serializers.SerializerMethodField()
    ip = serializers.SerializerMethodField()
    ai_label = serializers.SerializerMethodField()

    def _shows_media(self, post) -> bool:
        return post.status != "removed"

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_video_url(self, post):
        return _media_url(post.video, self.context.get("request")) if self._shows_media(post) else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_poster_url(self, post):
        return _media_url(post.poster, self.context.get("request")) if self._shows_media(post) else None

    @extend_schema_field(serializers.BooleanField())
    def get_liked_by_me(self, post) -> bool:
        annotated = getattr(post, "liked_by_me", None)
        if annotated is not None:
            return bool(annotated)
        request = self.context.get("request")
        viewer = getattr(request, "user", None)
        if viewer is None or not viewer.is_authenticated:
            return False
        return post.likes.filter(user_id=viewer.pk).exists()

    @extend_schema_field(CameoRefSerializer(many=True))
    def get_cameos(self, post):
        return [
            {"id": str(ref.get("id")), "owner_username": ref.get("owner_username")}
            for ref in post.cameo_refs or []
            if isinstance(ref, dict)
        ]

    @extend_schema_field(IpRefSerializer(many=True))
    def get_ip(self, post):
        return [
            {"id": str(ref.get("id")), "name": ref.get("name"), "rights_holder": ref.get("rights_holder")}
            for ref in post.ip_refs or []
            if isinstance(ref, dict)
        ]

    @extend_schema_field(AiLabelSerializer())
    def get_ai_label(self, post):
        return {
            "content_id": None if post.content_id is None else str(post.content_id),
            "provider": post.provider,
        }

    def to_representation(self, post):
        """The fields above, built directly: feeds render many posts per request, and DRF's
        field-by-field machinery costs more than the data (the declared fields still give the schema)."""
        shows_media = self._shows_media(post)
        return {
            "id": str(post.pk),
            "author": {"id": str(post.author_id), "username": post.author.username},
            "status": post.status,
            "caption": post.caption,
            "prompt": post.prompt,
            "video_url": self.get_video_url(post) if shows_media else None,
            "poster_url": self.get_poster_url(post) if shows_media else None,
            "duration_s": post.duration_s,
            "width": post.width,
            "height": post.height,
            "created_at": _iso(post.created_at),
            "published_at": _iso(post.published_at),
            "like_count": post.like_count,
            "comment_count": post.comment_count,
            "remix_count": post.remix_count,
            "view_count": post.view_count,
            "liked_by_me": self.get_liked_by_me(post),
            "remix_of": None if post.remix_of_id is None else str(post.remix_of_id),
            "root_id": None if post.root_id is None else str(post.root_id),
            "remix_allowed": post.remix_allowed,
            "cameos": self.get_cameos(post),
            "ip": self.get_ip(post),
            "ai_label": self.get_ai_label(post),
        }


def _iso(moment) -> str | None:
    """The format DRF's DateTimeField renders (ISO 8601, UTC as Z)."""
    if moment is None:
        return None
    return _DATETIME_FIELD.to_representation(moment)


_DATETIME_FIELD = serializers.DateTimeField()


class PostPageSerializer(serializers.Serializer):
    results = PostSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class PostUpdateSerializer(StrictSerializer):
    caption = serializers.CharField(max_length=2200, required=False, allow_blank=True)
    remix_allowed = serializers.BooleanField(required=False)


class CommentSerializer(serializers.Serializer):
    id = IdField()
    author = UserSummarySerializer()
    text = serializers.CharField()
    created_at = serializers.DateTimeField()


class CommentPageSerializer(serializers.Serializer):
    results = CommentSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class CommentCreateSerializer(StrictSerializer):
    text = serializers.CharField(max_length=2000)


class ReportCreateSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)


class ViewEventSerializer(StrictSerializer):
    post_id = serializers.RegexField(r"^[0-9]{1,18}$")
    watched_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000)


class ViewEventsSerializer(StrictSerializer):
    events = ViewEventSerializer(many=True, allow_empty=False, max_length=100)


class AcceptedSerializer(serializers.Serializer):
    status = serializers.CharField()


class NotificationSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField()
    actor = UserSummarySerializer(allow_null=True)
    post_id = serializers.CharField(allow_null=True)
    data = serializers.DictField()
    created_at = serializers.DateTimeField()
    read = serializers.BooleanField()


class NotificationPageSerializer(serializers.Serializer):
    results = NotificationSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class MarkReadSerializer(StrictSerializer):
    ids = serializers.ListField(
        child=serializers.RegexField(r"^[0-9]{1,18}$"), required=False, allow_empty=True, max_length=500
    )


class MarkedReadSerializer(serializers.Serializer):
    marked_read = serializers.IntegerField()
