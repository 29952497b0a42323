from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from core.serializers import ErrorDetailSerializer, IdField, StrictSerializer
from remix.models import MAX_REVENUE_SHARE_BPS, EventKind, MemberRole, PolicyStatus
from social.api.serializers import PostSerializer, UserSummarySerializer

# ---- rights holders ----


class RightsHolderCreateSerializer(StrictSerializer):
    name = serializers.CharField(min_length=2, max_length=120)


class RightsHolderSerializer(serializers.Serializer):
    id = IdField()
    name = serializers.CharField()
    verified = serializers.BooleanField()
    verified_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class MemberRequestSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=MemberRole.values, default=MemberRole.MEMBER)


class MemberSerializer(serializers.Serializer):
    rights_holder_id = IdField()
    user = UserSummarySerializer()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


# ---- IP ----


class PolicyInputSerializer(StrictSerializer):
    """Fields left out keep their current value (on creation: opted out, no cameos, no share)."""

    status = serializers.ChoiceField(choices=PolicyStatus.values, required=False)
    allow_cameos = serializers.BooleanField(required=False)
    disallowed_themes = serializers.ListField(
        child=serializers.CharField(max_length=80), max_length=50, allow_empty=True, required=False
    )
    revenue_share_bps = serializers.IntegerField(min_value=0, max_value=MAX_REVENUE_SHARE_BPS, required=False)


class IpCreateSerializer(StrictSerializer):
    rights_holder_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    name = serializers.CharField(min_length=1, max_length=120)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=120), max_length=100, required=False, default=list
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    policy = PolicyInputSerializer(required=False)


class IpUpdateSerializer(StrictSerializer):
    name = serializers.CharField(min_length=1, max_length=120, required=False)
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=120), max_length=100, required=False
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    policy = PolicyInputSerializer(required=False)


class PolicySerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    allow_cameos = serializers.BooleanField()
    disallowed_themes = serializers.ListField(child=serializers.CharField())
    revenue_share_bps = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class RightsHolderRefSerializer(serializers.Serializer):
    id = IdField()
    name = serializers.CharField()


class IpSerializer(serializers.Serializer):
    id = IdField()
    rights_holder = RightsHolderRefSerializer()
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    policy = PolicySerializer(source="current_policy")
    created_at = serializers.DateTimeField()


class IpPageSerializer(serializers.Serializer):
    results = IpSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class IpUsageSerializer(serializers.Serializer):
    post_id = IdField()
    author = UserSummarySerializer(source="post.author")
    post_status = serializers.CharField(source="post.status")
    policy_version = serializers.IntegerField(source="policy.version")
    created_at = serializers.DateTimeField()


class IpUsagePageSerializer(serializers.Serializer):
    results = IpUsageSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


# ---- revenue ----


class RevenueEventRequestSerializer(StrictSerializer):
    event_id = serializers.CharField(min_length=1, max_length=100)
    post_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    amount_minor = serializers.IntegerField(min_value=-(2**62), max_value=2**62)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$")
    kind = serializers.ChoiceField(choices=EventKind.values)
    reverses = serializers.CharField(min_length=1, max_length=100, required=False, allow_null=True)


class PartySerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["platform", "rights_holder", "cameo_owner", "remix_source", "creator"]
    )
    id = serializers.CharField(allow_null=True)
    ip_id = serializers.CharField(
        required=False, help_text="for rights holders: the IP that earned this share"
    )


class SplitSerializer(serializers.Serializer):
    party = PartySerializer()
    amount_minor = serializers.IntegerField()


class RevenueEventResponseSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    splits = SplitSerializer(many=True)


MAX_BATCH_EVENTS = 1000


@dataclass(frozen=True)
class InvalidItem:
    raw: Any
    error: serializers.ValidationError


class EachItemOnItsOwnListField(serializers.ListField):
    """A list whose items are validated one by one: each becomes its validated data or an
    InvalidItem, so that one malformed item does not refuse the others."""

    def run_child_validation(self, data):
        items = []
        for item in data:
            try:
                items.append(self.child.run_validation(item))
            except serializers.ValidationError as error:
                items.append(InvalidItem(raw=item, error=error))
        return items


class RevenueEventBatchRequestSerializer(StrictSerializer):
    """Revenue events recorded in one request, each as by POST /revenue/events."""

    events = EachItemOnItsOwnListField(
        child=RevenueEventRequestSerializer(),
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        help_text=f"1 to {MAX_BATCH_EVENTS} events; more is a 400 `invalid` for the whole batch. "
        "A malformed event gets its own 400 result.",
    )


class RevenueEventResultSerializer(serializers.Serializer):
    event_id = serializers.CharField(
        allow_null=True, help_text="null when the item has no event_id that is a string"
    )
    status = serializers.ChoiceField(
        choices=[201, 200, 409, 400],
        help_text="201 recorded; 200 a replay (same splits as first recorded); 409 `event_id_conflict` "
        "or `already_refunded`; 400 refused on its own (`invalid`, `not_found`, `invalid_refund`, "
        "`refund_mismatch`: the codes POST /revenue/events gives)",
    )
    splits = SplitSerializer(many=True, required=False, help_text="with 201 and 200")
    error = ErrorDetailSerializer(required=False, help_text="with 409 and 400")


class RevenueEventBatchResponseSerializer(serializers.Serializer):
    results = RevenueEventResultSerializer(many=True, help_text="one per event, in request order")


class CurrencyAmountSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount_minor = serializers.IntegerField()


class EarningsLineSerializer(serializers.Serializer):
    post_id = IdField()
    role = serializers.CharField()
    currency = serializers.CharField()
    events = serializers.IntegerField()
    amount_minor = serializers.IntegerField()


class EarningsSerializer(serializers.Serializer):
    locals()["from"] = serializers.DateTimeField()  # `from` is a Python keyword
    to = serializers.DateTimeField()
    totals = CurrencyAmountSerializer(many=True)
    lines = EarningsLineSerializer(many=True)


class StatementLineSerializer(serializers.Serializer):
    ip_id = IdField()
    ip_name = serializers.CharField()
    post_id = IdField()
    currency = serializers.CharField()
    events = serializers.IntegerField()
    amount_minor = serializers.IntegerField()


class StatementSerializer(serializers.Serializer):
    rights_holder = RightsHolderRefSerializer()
    locals()["from"] = serializers.DateTimeField()  # `from` is a Python keyword
    to = serializers.DateTimeField()
    totals = CurrencyAmountSerializer(many=True)
    lines = StatementLineSerializer(many=True)


class BooksCheckSerializer(serializers.Serializer):
    balanced = serializers.BooleanField()
    entries = serializers.IntegerField()
    postings = serializers.IntegerField()
    unbalanced_entries = serializers.ListField(child=serializers.IntegerField())
    currency_totals = serializers.DictField(child=serializers.IntegerField())
    events_without_entry = serializers.IntegerField()


# ---- lineage ----


class LineageSerializer(serializers.Serializer):
    ancestors = PostSerializer(many=True)
    depth = serializers.IntegerField()
