"""What a data export (social/exports.py) holds of a user's earnings: their ledger postings since
the account began, per post, role and currency, with totals (remix.ledger, as `GET /me/earnings`)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from remix.ledger import earnings_of_user
from social.exports import register_section

_BEGINNING = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def earnings(user) -> dict:
    from remix.api.serializers import EarningsSerializer

    start, end = _BEGINNING, timezone.now() + dt.timedelta(seconds=1)
    return EarningsSerializer(
        {"from": start, "to": end, **earnings_of_user(user_id=user.pk, start=start, end=end)}
    ).data


register_section(
    "earnings.json",
    describes="the account's earnings from the revenue ledger: amounts in minor units per post, role and "
    "currency, with totals per currency",
    collect=earnings,
)
