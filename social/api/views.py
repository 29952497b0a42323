import functools

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import RefreshToken

from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.errors import ApiError
from core.pagination import page_response_data, read_limit, request_page
from core.schema import errors
from core.throttles import WriteRateThrottle
from social import feed, guardians, selectors, services
from social.api import serializers as s
from social.api.throttles import SIGN_IN_THROTTLES, AuthRateThrottle
from social.models import PostStatus
from social.scroll_limit import DailyScroll


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=s.RegisterSerializer, responses={201: s.RegisteredSerializer}, auth=[])
    def post(self, request):
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.register_user(**data.validated_data)
        return Response(s.RegisteredSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = list(SIGN_IN_THROTTLES)

    @extend_schema(
        request=s.TokenObtainRequestSerializer, responses={200: s.TokenPairSerializer, **errors(401)}, auth=[]
    )
    def post(self, request):
        s.TokenObtainRequestSerializer(data=request.data).is_valid(raise_exception=True)
        serializer = TokenObtainPairSerializer(data=request.data)
        try:
            valid = serializer.is_valid()
        except AuthenticationFailed:
            valid = False
        if not valid:
            raise ApiError("The username or password is wrong.", code="invalid_credentials", status_code=401)
        return Response(serializer.validated_data)


class TokenRefreshView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=s.TokenRefreshRequestSerializer,
        responses={200: s.TokenPairSerializer, **errors(401)},
        auth=[],
    )
    def post(self, request):
        """Rotates: a new access and refresh token; the refresh token used is refused from now on."""
        s.TokenRefreshRequestSerializer(data=request.data).is_valid(raise_exception=True)
        serializer = TokenRefreshSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise ApiError(
                "The refresh token is invalid, expired or already used.",
                code="token_invalid",
                status_code=401,
            ) from exc
        except get_user_model().DoesNotExist as exc:
            raise ApiError("The account no longer exists.", code="token_invalid", status_code=401) from exc
        return Response(
            {"access": serializer.validated_data["access"], "refresh": serializer.validated_data["refresh"]}
        )


class LogoutView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=s.TokenRefreshRequestSerializer, responses={204: None, **errors(401)}, auth=[])
    def post(self, request):
        """Ends the session of this refresh token: it can no longer be refreshed (its access token
        lapses within JWT_ACCESS_MINUTES). Idempotent."""
        s.TokenRefreshRequestSerializer(data=request.data).is_valid(raise_exception=True)
        raw = request.data["refresh"]
        try:
            # Signature and expiry, but not the blacklist: ending an ended session is no error.
            payload = token_backend.decode(raw, verify=True)
        except TokenBackendError as exc:
            raise ApiError(
                "The refresh token is invalid or expired.", code="token_invalid", status_code=401
            ) from exc
        if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != "refresh":
            raise ApiError("This is not a refresh token.", code="token_invalid", status_code=401)
        RefreshToken(raw, verify=False).blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


def me_payload(user):
    quota = selectors.quota_for(user=user)
    link = selectors.guardian_controls_for(teen=user)
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "email": user.email,
        "is_minor": user.is_minor,
        "tier": user.tier,
        "quota": {"daily_limit": quota.daily_limit, "used_today": quota.used_today},
        "guardian": None if link is None else link.guardian,
        "controls": None if link is None else guardians.controls_of(link),
    }


class MeView(APIView):
    @extend_schema(responses={200: s.MeSerializer})
    def get(self, request):
        return Response(s.MeSerializer(me_payload(request.user)).data)

    @extend_schema(request=s.MeUpdateSerializer, responses={200: s.MeSerializer})
    def patch(self, request):
        data = s.MeUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.update_profile(user=request.user, **data.validated_data)
        return Response(s.MeSerializer(me_payload(user)).data)

    @extend_schema(responses={204: None})
    def delete(self, request):
        services.delete_account(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserDetailView(APIView):
    @extend_schema(responses={200: s.UserProfileSerializer})
    def get(self, request, username: str):
        user = selectors.user_profile(viewer=request.user, username=username)
        return Response(s.UserProfileSerializer(user).data)


class UserPostsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", str, enum=["published", "draft", "removed"], description="author only"
            ),
            *CURSOR_PAGE_PARAMETERS,
        ],
        responses={200: s.PostPageSerializer, **errors(403)},
    )
    def get(self, request, username: str):
        author = selectors.user_profile(viewer=request.user, username=username)
        status_filter = request.query_params.get("status") or PostStatus.PUBLISHED
        if status_filter not in PostStatus.values:
            raise ApiError(details={"status": ["Must be published, draft or removed."]})
        posts = selectors.user_posts(viewer=request.user, author=author, status=status_filter)
        keys = ["published_at", "id"] if status_filter == PostStatus.PUBLISHED else ["created_at", "id"]
        page = request_page(request, posts, keys=keys)
        return Response(s.post_page_data(page, request))


class FollowView(APIView):
    throttle_classes = [WriteRateThrottle]
    throttle_scope = "follow"

    @extend_schema(request=None, responses={204: None, **errors(400, 403)})
    def put(self, request, username: str):
        services.follow_user(
            follower=request.user, followee=selectors.get_active_user_or_404(username=username)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def delete(self, request, username: str):
        services.unfollow_user(
            follower=request.user, followee=selectors.get_active_user_or_404(username=username)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockView(APIView):
    @extend_schema(request=None, responses={204: None, **errors(400)})
    def put(self, request, username: str):
        services.block_user(blocker=request.user, blocked=selectors.get_active_user_or_404(username=username))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def delete(self, request, username: str):
        services.unblock_user(
            blocker=request.user, blocked=selectors.get_active_user_or_404(username=username)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class FeedView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("tab", str, enum=["for_you", "following"], description="default for_you"),
            *CURSOR_PAGE_PARAMETERS,
        ],
        responses={200: s.PostPageSerializer, **errors(429)},
        description="A minor is served at most their daily number of posts (SCROLL_LIMIT_MINOR, or their "
        "guardian's): the page that reaches it is cut short, later ones answer 429 `scroll_limit_reached` "
        "until the next UTC midnight.",
    )
    def get(self, request):
        tab = request.query_params.get("tab") or "for_you"
        cursor = request.query_params.get("cursor")
        limit = read_limit(request.query_params)
        viewer = request.user
        if tab not in ("for_you", "following"):
            raise ApiError(details={"tab": ["Must be for_you or following."]})
        feed_settings = selectors.feed_settings_for(user=viewer)
        if tab == "following":
            page_of = feed.following_page
        else:
            page_of = functools.partial(feed.for_you_page, personalised=feed_settings.personalised)
        # The feeds are the hottest reads: PostgreSQL renders their posts where it can.
        media_url_prefix = s.PostRendering(request).database_media_prefix()
        with DailyScroll(
            user_id=viewer.pk, daily_limit=feed_settings.daily_scroll_limit, wanted=limit
        ) as allowance:
            page = page_of(
                viewer=viewer, cursor=cursor, limit=allowance.granted, media_url_prefix=media_url_prefix
            )
            allowance.record(page)
        return s.post_page_response(page, request)


class PostDetailView(APIView):
    @extend_schema(responses={200: s.PostSerializer})
    def get(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        return Response(s.PostSerializer(post, context={"request": request}).data)

    @extend_schema(request=s.PostUpdateSerializer, responses={200: s.PostSerializer, **errors(403, 409)})
    def patch(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        data = s.PostUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.update_post(actor=request.user, post=post, **data.validated_data)
        post = selectors.get_visible_post(viewer=request.user, post_id=post.pk)
        return Response(s.PostSerializer(post, context={"request": request}).data)

    @extend_schema(responses={204: None, **errors(403)})
    def delete(self, request, post_id: str):
        """The author deletes; the owner of a cameo in the post takes it down, across blocks too;
        others may not."""
        post = selectors.get_post_for_likeness_owner(viewer=request.user, post_id=post_id)
        if post.author_id == request.user.pk:
            services.delete_post(actor=request.user, post=post)
        else:
            services.take_down_post(actor=request.user, post=post)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostPublishView(APIView):
    @extend_schema(request=None, responses={200: s.PostSerializer, **errors(403, 409)})
    def post(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        services.publish_post(actor=request.user, post=post)
        post = selectors.get_visible_post(viewer=request.user, post_id=post.pk)
        return Response(s.PostSerializer(post, context={"request": request}).data)


class PostLikeView(APIView):
    @extend_schema(request=None, responses={204: None, **errors(409)})
    def put(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        services.like_post(user=request.user, post=post)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def delete(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        services.unlike_post(user=request.user, post=post)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostCommentsView(APIView):
    throttle_classes = [WriteRateThrottle]
    throttle_scope = "comment"

    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.CommentPageSerializer})
    def get(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        page = request_page(request, selectors.post_comments(viewer=request.user, post=post), keys=["id"])
        return Response(page_response_data(page, s.CommentSerializer(page.items, many=True).data))

    @extend_schema(request=s.CommentCreateSerializer, responses={201: s.CommentSerializer, **errors(409)})
    def post(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        data = s.CommentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_on_post(author=request.user, post=post, text=data.validated_data["text"])
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class PostReportView(APIView):
    @extend_schema(request=s.ReportCreateSerializer, responses={202: s.AcceptedSerializer})
    def post(self, request, post_id: str):
        post = selectors.get_visible_post(viewer=request.user, post_id=post_id)
        data = s.ReportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.report_post(reporter=request.user, post=post, reason=data.validated_data["reason"])
        return Response({"status": "accepted"}, status=status.HTTP_202_ACCEPTED)


class ViewEventsView(APIView):
    @extend_schema(request=s.ViewEventsSerializer, responses={202: s.AcceptedSerializer})
    def post(self, request):
        data = s.ViewEventsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.record_views(viewer=request.user, events=data.validated_data["events"])
        return Response({"status": "accepted"}, status=status.HTTP_202_ACCEPTED)


class NotificationsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("unread", bool, description="only unread ones"),
            *CURSOR_PAGE_PARAMETERS,
        ],
        responses={200: s.NotificationPageSerializer},
    )
    def get(self, request):
        unread_only = request.query_params.get("unread", "").lower() in ("1", "true", "yes")
        page = request_page(
            request, selectors.notifications_for(user=request.user, unread_only=unread_only), keys=["id"]
        )
        return Response(page_response_data(page, [services.notification_payload(n) for n in page.items]))


class NotificationsReadView(APIView):
    @extend_schema(request=s.MarkReadSerializer, responses={200: s.MarkedReadSerializer})
    def post(self, request):
        data = s.MarkReadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = data.validated_data.get("ids")
        marked = services.mark_notifications_read(
            user=request.user, ids=None if ids is None else [int(value) for value in ids]
        )
        return Response({"marked_read": marked})


def feed_preferences_payload(user) -> dict:
    feed_settings = selectors.feed_settings_for(user=user)
    return {"mood": feed_settings.mood or None, "personalised": feed_settings.personalised}


class FeedPreferencesView(APIView):
    @extend_schema(responses={200: s.FeedPreferencesSerializer})
    def get(self, request):
        return Response(feed_preferences_payload(request.user))

    @extend_schema(
        request=s.FeedPreferencesUpdateSerializer, responses={200: s.FeedPreferencesSerializer, **errors(403)}
    )
    def put(self, request):
        """`personalised` is the one in force: a minor's is off unless they turned it on, and a
        guardian may keep it off (403 `guardian_control` to turning it on)."""
        data = s.FeedPreferencesUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.set_feed_preferences(user=request.user, **data.validated_data)
        return Response(feed_preferences_payload(user))


class GuardianCodeView(APIView):
    @extend_schema(request=None, responses={201: s.GuardianCodeSerializer, **errors(403, 409)})
    def post(self, request):
        """A minor's code for the adult who is to be their guardian: single use, replaces any earlier
        one. 403 `not_a_minor`, 409 `already_has_guardian`."""
        code = guardians.request_guardian_code(teen=request.user)
        return Response(s.GuardianCodeSerializer(code).data, status=status.HTTP_201_CREATED)


class GuardianLinkView(APIView):
    throttle_classes = [WriteRateThrottle]
    throttle_scope = "guardian_link"

    @extend_schema(
        request=s.GuardianLinkRequestSerializer,
        responses={201: s.GuardianLinkSerializer, **errors(403, 409, 422)},
    )
    def post(self, request):
        """An adult redeems a minor's code and becomes their guardian. 403 `guardian_must_be_adult`
        or `blocked`, 422 `guardian_code_invalid` (unknown, used or expired), 409
        `already_has_guardian`."""
        data = s.GuardianLinkRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link = guardians.link_guardian(guardian=request.user, code=data.validated_data["code"])
        body = {"teen": link.teen, "controls": guardians.controls_of(link)}
        return Response(s.GuardianLinkSerializer(body).data, status=status.HTTP_201_CREATED)


class GuardianControlsView(APIView):
    @extend_schema(responses={200: s.GuardianControlsSerializer})
    def get(self, request, username: str):
        link = selectors.guardian_link_of(guardian=request.user, teen_username=username)
        return Response(s.GuardianControlsSerializer(guardians.controls_of(link)).data)

    @extend_schema(
        request=s.GuardianControlsUpdateSerializer,
        responses={200: s.GuardianControlsSerializer, **errors(403)},
    )
    def put(self, request, username: str):
        """Sets the controls given (the others keep their value); they apply at once. 403
        `not_a_minor` once the teen has come of age."""
        data = s.GuardianControlsUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link = guardians.set_controls(guardian=request.user, teen_username=username, **data.validated_data)
        return Response(s.GuardianControlsSerializer(guardians.controls_of(link)).data)


class GuardianTeenView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, username: str):
        """The guardian ends the link; the teen is told."""
        guardians.unlink_teen(guardian=request.user, teen_username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyGuardianView(APIView):
    @extend_schema(responses={204: None, **errors(404)})
    def delete(self, request):
        """The teen ends the link to their guardian, who is told; 404 without one."""
        guardians.unlink_guardian(teen=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
