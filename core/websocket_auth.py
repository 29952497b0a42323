"""Websocket authentication: the access token travels as the subprotocol `bearer.<access>` (kept
out of URLs and so out of access logs), or, for older clients, in the query string
(`?token=<access>`). The scope gets the user, the token's expiry (the consumer closes the socket
then) and the subprotocol to accept.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

SUBPROTOCOL_PREFIX = "bearer."


@database_sync_to_async
def user_for_token(raw_token: str):
    """(user, expiry as a Unix time or None); AnonymousUser for a bad token or an inactive account."""
    try:
        token = AccessToken(raw_token)
    except TokenError:
        return AnonymousUser(), None
    user_id = token.get(api_settings.USER_ID_CLAIM)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return (user, token.get("exp")) if user else (AnonymousUser(), None)


def offered_token(scope) -> tuple[str, str | None]:
    """The token the client offered and the subprotocol that carried it (None: the query string)."""
    for subprotocol in scope.get("subprotocols") or []:
        if subprotocol.startswith(SUBPROTOCOL_PREFIX):
            return subprotocol[len(SUBPROTOCOL_PREFIX) :], subprotocol
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [""])[0], None


class JwtQueryStringAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        raw_token, subprotocol = offered_token(scope)
        user, expires_at = await user_for_token(raw_token) if raw_token else (AnonymousUser(), None)
        scope = {**scope, "user": user, "token_expires_at": expires_at, "auth_subprotocol": subprotocol}
        return await self.inner(scope, receive, send)
