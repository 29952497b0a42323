from datetime import date

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

ADULT_AGE = 18


class Tier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"


def age_on(birth_date: date, today: date) -> int:
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True, default="")
    bio = models.CharField(max_length=500, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    tier = models.CharField(max_length=8, choices=Tier.choices, default=Tier.FREE)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(tier__in=["free", "pro"]), name="user_tier_valid"),
        ]

    @property
    def is_minor(self) -> bool:
        """Users without a birth date (staff made by hand) are treated as minors: the safe side."""
        if self.birth_date is None:
            return True
        return age_on(self.birth_date, timezone.localdate()) < ADULT_AGE
