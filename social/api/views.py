from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from core.errors import ApiError, NotFound
from social import selectors, services
from social.api import serializers as s
from social.api.throttles import AuthRateThrottle


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
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=s.TokenObtainRequestSerializer, responses={200: s.TokenPairSerializer}, auth=[])
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

    @extend_schema(request=s.TokenRefreshRequestSerializer, responses={200: s.AccessTokenSerializer}, auth=[])
    def post(self, request):
        s.TokenRefreshRequestSerializer(data=request.data).is_valid(raise_exception=True)
        serializer = TokenRefreshSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise ApiError(
                "The refresh token is invalid or expired.", code="token_invalid", status_code=401
            ) from exc
        except get_user_model().DoesNotExist as exc:
            raise ApiError("The account no longer exists.", code="token_invalid", status_code=401) from exc
        return Response({"access": serializer.validated_data["access"]})


def me_payload(user):
    quota = selectors.quota_for(user=user)
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "email": user.email,
        "is_minor": user.is_minor,
        "tier": user.tier,
        "quota": {"daily_limit": quota.daily_limit, "used_today": quota.used_today},
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
    @extend_schema(responses={200: s.UserSummarySerializer})
    def get(self, request, username: str):
        user = selectors.get_active_user(username=username)
        if user is None:
            raise NotFound()
        return Response(s.UserSummarySerializer(user).data)
