"""Every write of the social app: plain functions, keyword-only, one transaction each."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import Signal

from core.errors import ApiError
from social.models import User

# Sent inside the transaction that deletes a user, before the row goes; later apps erase what they
# hold for that user (cameos and their biometric data) in the same transaction.
user_deleting = Signal()


def register_user(*, username: str, password: str, birth_date: date, email: str = "") -> User:
    candidate = User(username=username, email=email or "", birth_date=birth_date)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ApiError(
            "The password is too weak.", code="invalid", details={"password": exc.messages}
        ) from exc
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise ApiError("This username is taken.", code="username_taken")
            candidate.set_password(password)
            candidate.save()
    except IntegrityError as exc:
        raise ApiError("This username is taken.", code="username_taken") from exc
    return candidate


def update_profile(*, user: User, **changes) -> User:
    allowed = {"display_name", "bio", "email"}
    fields = [name for name in changes if name in allowed]
    with transaction.atomic():
        for name in fields:
            setattr(user, name, changes[name])
        if fields:
            user.save(update_fields=fields)
    return user


def delete_account(*, user: User) -> None:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        user_deleting.send(sender=User, user=locked)
        locked.delete()
