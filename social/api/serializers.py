import datetime as dt
import functools
import json

from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.files.storage import FileSystemStorage
from django.http import HttpResponse
from django.utils import timezone
from django.utils.encoding import filepath_to_uri
from rest_framework import serializers
from rest_framework.response import Response

from core.pagination import Page, page_response_data
from core.serializers import IdField, StrictSerializer
from social.media_access import signed_query
from social.models import CameoPermissionCap, Post, PostStatus
from social.selectors import PostCard, RenderedCards

# The most a guardian may let the feed serve their teen in a day.
MAX_DAILY_SCROLL_LIMIT = 10_000


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


class UserSummarySerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()


class GuardianControlsSerializer(serializers.Serializer):
    personalised = serializers.BooleanField(
        help_text="false keeps the teen's for_you unpersonalised; true leaves it to the teen"
    )
    daily_scroll_limit = serializers.IntegerField(help_text="posts the feed serves the teen a UTC day")
    cameo_permission_cap = serializers.ChoiceField(
        choices=CameoPermissionCap.choices, help_text="the widest permission the teen's cameos may have"
    )
    remix_of_my_posts = serializers.BooleanField(help_text="whether others may remix the teen's posts")


class GuardianControlsUpdateSerializer(StrictSerializer):
    """The controls to change; those left out keep their value."""

    personalised = serializers.BooleanField(required=False)
    daily_scroll_limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_DAILY_SCROLL_LIMIT,
        help_text="null: the default (SCROLL_LIMIT_MINOR)",
    )
    cameo_permission_cap = serializers.ChoiceField(choices=CameoPermissionCap.choices, required=False)
    remix_of_my_posts = serializers.BooleanField(required=False)


class MeSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    email = serializers.CharField(help_text="an email address, or empty when none was given")
    is_minor = serializers.BooleanField()
    tier = serializers.CharField()
    quota = QuotaSerializer()
    guardian = UserSummarySerializer(allow_null=True, help_text="a minor's guardian; null without one")
    controls = GuardianControlsSerializer(
        allow_null=True, help_text="a minor's guardian's controls; null without a guardian"
    )


class FeedPreferencesSerializer(serializers.Serializer):
    mood = serializers.CharField(
        allow_null=True, help_text="what the viewer is in the mood for; kept, not yet used in ranking"
    )
    personalised = serializers.BooleanField(help_text="whether for_you uses the viewer's personal signals")


class FeedPreferencesUpdateSerializer(StrictSerializer):
    mood = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    personalised = serializers.BooleanField(
        required=False, allow_null=True, help_text="null: the default for the viewer's age"
    )


class GuardianCodeSerializer(serializers.Serializer):
    code = serializers.CharField()
    expires_at = serializers.DateTimeField()


class GuardianLinkRequestSerializer(StrictSerializer):
    code = serializers.CharField(max_length=32)


class GuardianLinkSerializer(serializers.Serializer):
    teen = UserSummarySerializer()
    controls = GuardianControlsSerializer()


class MeUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    bio = serializers.CharField(max_length=500, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


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


@functools.lru_cache(maxsize=16)
def _fixed_url_prefix(storage, base_url: str) -> str | None:
    """The prefix of every URL of `storage` (with `base_url`, which tests may change), when its URLs
    are that prefix and the name quoted by `filepath_to_uri`; None when they are not (signed)."""
    probe = "posts/0/probe.mp4"
    url = storage.url(probe)
    if not url.endswith(probe):
        return None
    prefix = url[: -len(probe)]
    unsafe_name = "posts/0/a name é.jpg"
    if storage.url(unsafe_name) != prefix + filepath_to_uri(unsafe_name):
        return None
    return prefix


class PostRendering:
    """What rendering posts needs from one response, worked out once for all its posts: media URLs
    (the storage's URL, prefixed with the request's origin when the storage gives a path, as the
    local disk does) and timestamps in the current timezone.

    Media of a post that is not published are reachable only at signed URLs that expire
    (MEDIA_URL_TTL_S): on the local disk `social.media_access.signed_query` is added to the path;
    object storage signs every URL itself (core.storage.MediaS3Storage)."""

    def __init__(self, request):
        self.request = request
        self.storage = Post._meta.get_field("video").storage
        self._base_url = getattr(self.storage, "base_url", "") or ""
        self._origin: str | None = None
        self._timezone = timezone.get_current_timezone()

    def iso(self, moment) -> str | None:
        """What DRF's DateTimeField renders: ISO 8601 in the current timezone, UTC as Z."""
        if moment is None:
            return None
        text = moment.astimezone(self._timezone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    def database_media_prefix(self) -> str | None:
        """What PostgreSQL puts before a quoted file name to make its media URL, when the feeds may
        render posts in the database (`social.selectors._CARD_JSON`, published posts only: their
        URLs need no signature): the storage's URLs are a fixed prefix and the name quoted as
        `filepath_to_uri` does (the local disk), and times are rendered in UTC. None otherwise
        (signed URLs, another timezone, or FEED_RENDER_IN_DATABASE off)."""
        if not settings.FEED_RENDER_IN_DATABASE:
            return None
        if self._timezone.utcoffset(dt.datetime(2000, 1, 1)) != dt.timedelta(0):
            return None
        prefix = _fixed_url_prefix(self.storage, self._base_url)
        return None if prefix is None else self._absolute(prefix)

    def url(self, name: str, *, status: str) -> str | None:
        """The URL of a post's media file: none for a removed post (API.md), a signed one for a
        draft, the plain one for a published post on the local disk."""
        if not name or status == PostStatus.REMOVED:
            return None
        if isinstance(self.storage, FileSystemStorage):
            # FileSystemStorage.url without its per-call urljoin and setting reads.
            url = self._base_url + filepath_to_uri(name).lstrip("/")
            if status != PostStatus.PUBLISHED:
                url += "?" + signed_query(name)
        else:
            url = self.storage.url(name)
        return self._absolute(url)

    def _absolute(self, url: str) -> str:
        """The URL with the request's origin when the storage gave a path."""
        if self.request is None or url.startswith(("http://", "https://")):
            return url
        if not url.startswith("/"):
            return self.request.build_absolute_uri(url)
        if self._origin is None:
            self._origin = self.request.build_absolute_uri("/")[:-1]
        return self._origin + url


def post_rendering(context) -> PostRendering:
    """The response's PostRendering, kept in the serializer context so a list shares one."""
    rendering = context.get("post_rendering")
    if rendering is None:
        rendering = context["post_rendering"] = PostRendering(context.get("request"))
    return rendering


def _ref_id(ref: dict) -> str | None:
    value = ref.get("id")
    return None if value is None else str(value)


def render_post_card(card: PostCard, rendering: PostRendering) -> dict:
    """API.md's Post, from a PostCard: what PostSerializer's fields describe, built directly, as
    feeds render many posts per request and DRF's field-by-field machinery costs more than the data."""
    return {
        "id": str(card.pk),
        "author": {"id": str(card.author_id), "username": card.author_username},
        "status": card.status,
        "caption": card.caption,
        "prompt": card.prompt,
        "video_url": rendering.url(card.video, status=card.status),
        "poster_url": rendering.url(card.poster, status=card.status),
        "duration_s": card.duration_s,
        "width": card.width,
        "height": card.height,
        "has_audio": card.has_audio,
        "created_at": rendering.iso(card.created_at),
        "published_at": rendering.iso(card.published_at),
        "like_count": card.like_count,
        "comment_count": card.comment_count,
        "remix_count": card.remix_count,
        "view_count": card.view_count,
        "liked_by_me": bool(card.liked_by_me),
        "remix_of": None if card.remix_of_id is None else str(card.remix_of_id),
        "root_id": None if card.root_id is None else str(card.root_id),
        "sources": [str(source_id) for source_id in card.source_ids or []],
        "remix_allowed": card.remix_allowed,
        "cameos": [
            {"id": _ref_id(ref), "owner_username": ref.get("owner_username")}
            for ref in card.cameo_refs or []
            if isinstance(ref, dict)
        ],
        "ip": [
            {"id": _ref_id(ref), "name": ref.get("name"), "rights_holder": ref.get("rights_holder")}
            for ref in card.ip_refs or []
            if isinstance(ref, dict)
        ],
        "ai_label": {
            "content_id": None if card.content_id is None else str(card.content_id),
            "provider": card.provider,
        },
    }


class PostSerializer(serializers.Serializer):
    """API.md's Post. `liked_by_me` comes from the selector's annotation (no query per post)."""

    id = IdField()
    author = UserSummarySerializer()
    status = serializers.CharField()
    caption = serializers.CharField()
    prompt = serializers.CharField()
    video_url = serializers.URLField(allow_null=True)
    poster_url = serializers.URLField(allow_null=True)
    duration_s = serializers.FloatField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    has_audio = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)
    like_count = serializers.IntegerField()
    comment_count = serializers.IntegerField()
    remix_count = serializers.IntegerField()
    view_count = serializers.IntegerField()
    liked_by_me = serializers.BooleanField()
    remix_of = IdField(source="remix_of_id", allow_null=True)
    root_id = IdField(allow_null=True)
    # A stitch's posts in the order joined (empty for other posts).
    sources = serializers.ListField(child=IdField())
    remix_allowed = serializers.BooleanField()
    cameos = CameoRefSerializer(many=True)
    ip = IpRefSerializer(many=True)
    ai_label = AiLabelSerializer()

    def to_representation(self, post):
        if not isinstance(post, PostCard):
            post = PostCard.of_post(post, liked_by_me=self._liked_by_me(post))
        return render_post_card(post, post_rendering(self.context))

    def _liked_by_me(self, post) -> bool:
        annotated = getattr(post, "liked_by_me", None)
        if annotated is not None:
            return bool(annotated)
        request = self.context.get("request")
        viewer = getattr(request, "user", None)
        if viewer is None or not viewer.is_authenticated:
            return False
        return post.likes.filter(user_id=viewer.pk).exists()


def post_page_data(page: Page, request) -> dict:
    """A page of posts as every list of posts answers: `{"results": [...], "next_cursor": ...}`."""
    return page_response_data(page, PostSerializer(page.items, many=True, context={"request": request}).data)


def post_page_response(page: Page, request) -> Response | HttpResponse:
    """A page of posts as every list of posts answers; a page whose posts PostgreSQL rendered
    (`RenderedCards`) is sent as it came, without decoding and encoding the posts again."""
    if not isinstance(page.items, RenderedCards):
        return Response(post_page_data(page, request))
    body = '{"results":' + page.items.json + ',"next_cursor":' + json.dumps(page.next_cursor) + "}"
    return HttpResponse(body.encode(), content_type="application/json")


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
