"""The social part of the demo that `make run` loads."""

from datetime import date

from django.db import transaction

from social.models import User

DEMO_PASSWORD = "demo-password-42"
DEMO_USERS = [
    ("alice", "Alice", date(1994, 3, 2)),
    ("bob", "Bob", date(1990, 7, 19)),
    ("carol", "Carol", date(1988, 11, 5)),
    ("dan", "Dan", date(2011, 1, 30)),
]


def seed_social_demo() -> dict[str, User]:
    users = {}
    with transaction.atomic():
        for username, display_name, birth_date in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"display_name": display_name, "birth_date": birth_date}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            users[username] = user
    return users
