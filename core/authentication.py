"""Bearer-token authentication for the REST API."""

from __future__ import annotations

import functools
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings


@functools.cache
def _user_statement() -> tuple[str, list[str]]:
    user_model = get_user_model()
    fields = user_model._meta.concrete_fields
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in fields)} "
        f"FROM {quote(user_model._meta.db_table)} WHERE {quote(user_model._meta.pk.column)} = %s"
    )
    return sql, [field.attname for field in fields]


def user_by_id(user_id):
    """The user with this primary key, read with one statement built once (prepared by the
    connection after a few uses): every authenticated request runs it, and compiling the ORM's
    query cost more than running it. None when there is no such user."""
    try:
        user_pk = int(user_id)
    except (TypeError, ValueError):
        return None
    sql, attnames = _user_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return get_user_model().from_db(connection.alias, attnames, row)


class CheckedTokens:
    """Access tokens whose signature and claims this process has verified, kept until they expire:
    a client sends the same token with every request for its lifetime, and verifying it again cost
    a tenth of a feed request. Bounded; when full it starts over."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._tokens: dict[bytes, tuple[object, float]] = {}

    def get(self, raw_token: bytes):
        entry = self._tokens.get(raw_token)
        if entry is None:
            return None
        token, expires_at = entry
        if expires_at <= time.time():
            self._tokens.pop(raw_token, None)
            return None
        return token

    def put(self, raw_token: bytes, token) -> None:
        leeway = api_settings.LEEWAY
        leeway_s = leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway or 0)
        if len(self._tokens) >= self.capacity:
            self._tokens.clear()
        self._tokens[raw_token] = (token, float(token["exp"]) + leeway_s)

    def clear(self) -> None:
        self._tokens.clear()


checked_tokens = CheckedTokens()


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's, verifying each token once per process (`checked_tokens`) and reading the
    token's user through `user_by_id`; the checks are simplejwt's."""

    def get_validated_token(self, raw_token):
        token = checked_tokens.get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            checked_tokens.put(raw_token, token)
        return token

    def get_user(self, validated_token):
        if get_user_model()._meta.pk.name != api_settings.USER_ID_FIELD or api_settings.CHECK_REVOKE_TOKEN:
            return super().get_user(validated_token)
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken(_("Token contained no recognizable user identification")) from exc
        user = user_by_id(user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        return user
