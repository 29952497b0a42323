"""Websocket authentication: the access token travels in the query string (`?token=<access>`)."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken


@database_sync_to_async
def user_for_token(raw_token: str):
    try:
        token = AccessToken(raw_token)
    except TokenError:
        return AnonymousUser()
    user_id = token.get(api_settings.USER_ID_CLAIM)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user or AnonymousUser()


class JwtQueryStringAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token") or [""]
        scope = dict(scope)
        scope["user"] = await user_for_token(tokens[0]) if tokens[0] else AnonymousUser()
        return await self.inner(scope, receive, send)
