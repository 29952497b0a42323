import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.errors import ApiError, error_body
from core.pagination import page_response_data, request_page
from core.schema import errors
from core.serializers import ErrorSerializer
from remix import ledger, selectors, services
from remix.api import serializers as s
from remix.api.permissions import RecordsRevenueEvents
from social.api.serializers import PostPageSerializer, post_page_data
from social.selectors import get_visible_post

PERIOD_PARAMS = [
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="start, inclusive (a date means 00:00 UTC)"),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="end, exclusive; default now"),
]


def read_period(params) -> tuple[datetime, datetime]:
    """`from` (inclusive) and `to` (exclusive); dates mean midnight UTC. Without `to` the period
    ends now; without `from` it starts 30 days before its end."""

    def read(name: str) -> datetime | None:
        raw = params.get(name)
        if raw in (None, ""):
            return None
        try:
            moment = parse_datetime(raw)
        except ValueError:
            moment = None
        if moment is None:
            try:
                day = parse_date(raw)
            except ValueError:
                day = None
            if day is None:
                raise ApiError(details={name: ["Use an ISO 8601 date or date-time."]})
            moment = datetime.combine(day, time.min)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        try:
            # In UTC: the database refuses offsets beyond its range (PostgreSQL: +-15:59).
            return moment.astimezone(UTC)
        except OverflowError:
            raise ApiError(details={name: ["Out of range."]}) from None

    end = read("to") or timezone.now()
    try:
        start = read("from") or end - timedelta(days=30)
    except OverflowError:
        raise ApiError(details={"to": ["Too far in the past."]}) from None
    if start > end:
        raise ApiError(details={"from": ["Must not be after `to`."]})
    return start, end


def split_payload(split: ledger.Split) -> dict:
    party = {"type": split.party.type, "id": None if split.party.id is None else str(split.party.id)}
    if split.party.ip_id is not None:
        party["ip_id"] = str(split.party.ip_id)
    return {"party": party, "amount_minor": split.amount_minor}


# ---- rights holders ----


class RightsHolderCreateView(APIView):
    @extend_schema(
        request=s.RightsHolderCreateSerializer, responses={201: s.RightsHolderSerializer, **errors(409)}
    )
    def post(self, request):
        data = s.RightsHolderCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        holder = services.create_rights_holder(user=request.user, **data.validated_data)
        return Response(s.RightsHolderSerializer(holder).data, status=status.HTTP_201_CREATED)


class RightsHolderVerifyView(APIView):
    @extend_schema(request=None, responses={200: s.RightsHolderSerializer, **errors(403)})
    def post(self, request, holder_id: str):
        holder = services.verify_rights_holder(actor=request.user, rights_holder_id=holder_id)
        return Response(s.RightsHolderSerializer(holder).data)


class RightsHolderMemberView(APIView):
    @extend_schema(request=s.MemberRequestSerializer, responses={200: s.MemberSerializer, **errors(403, 409)})
    def put(self, request, holder_id: str, username: str):
        data = s.MemberRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = services.set_member(
            actor=request.user,
            rights_holder_id=holder_id,
            username=username,
            role=data.validated_data["role"],
        )
        return Response(s.MemberSerializer(member).data)

    @extend_schema(responses={204: None, **errors(403, 409)})
    def delete(self, request, holder_id: str, username: str):
        services.remove_member(actor=request.user, rights_holder_id=holder_id, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


STATEMENT_CSV_COLUMNS = ["ip_id", "ip_name", "post_id", "currency", "events", "amount_minor"]


class StatementCsvRenderer(BaseRenderer):
    """`?format=csv`: one line per IP, post and currency (refusals stay JSON: the view's
    `finalize_response`)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(STATEMENT_CSV_COLUMNS)
        for line in data["lines"]:
            writer.writerow([line[column] for column in STATEMENT_CSV_COLUMNS])
        return buffer.getvalue().encode(self.charset)


class RightsHolderStatementView(APIView):
    renderer_classes = [JSONRenderer, StatementCsvRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            # A refusal is the API's JSON error body, labelled as such, whatever format was asked.
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

    @extend_schema(
        parameters=[
            *PERIOD_PARAMS,
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="csv: one line per IP and post"
            ),
        ],
        responses={200: s.StatementSerializer, (200, "text/csv"): OpenApiTypes.STR, **errors(403)},
    )
    def get(self, request, holder_id: str):
        holder = selectors.get_rights_holder_for_member(viewer=request.user, rights_holder_id=holder_id)
        start, end = read_period(request.query_params)
        statement = ledger.statement_of_rights_holder(rights_holder_id=holder.pk, start=start, end=end)
        payload = {"rights_holder": holder, "from": start, "to": end, **statement}
        response = Response(s.StatementSerializer(payload).data)
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = (
                f'attachment; filename="statement-{holder.pk}-{start.date()}-{end.date()}.csv"'
            )
        return response


# ---- IP ----


class IpListCreateView(APIView):
    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else super().get_permissions()

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="part of a name or alias"),
            *CURSOR_PAGE_PARAMETERS,
        ],
        responses={200: s.IpPageSerializer},
        operation_id="ip_list",
        auth=[],
    )
    def get(self, request):
        page = request_page(request, selectors.ip_catalogue(q=request.query_params.get("q")), keys=["id"])
        return Response(page_response_data(page, s.IpSerializer(page.items, many=True).data))

    @extend_schema(request=s.IpCreateSerializer, responses={201: s.IpSerializer, **errors(403, 404)})
    def post(self, request):
        data = s.IpCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ip = services.register_ip(actor=request.user, **data.validated_data)
        return Response(s.IpSerializer(ip).data, status=status.HTTP_201_CREATED)


class IpDetailView(APIView):
    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else super().get_permissions()

    @extend_schema(responses={200: s.IpSerializer})
    def get(self, request, ip_id: str):
        ip, _ = selectors.get_ip_for_viewer(viewer=request.user, ip_id=ip_id)
        return Response(s.IpSerializer(ip).data)

    @extend_schema(request=s.IpUpdateSerializer, responses={200: s.IpSerializer, **errors(403)})
    def patch(self, request, ip_id: str):
        data = s.IpUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ip = services.update_ip(actor=request.user, ip_id=ip_id, **data.validated_data)
        return Response(s.IpSerializer(ip).data)


class IpUsageView(APIView):
    @extend_schema(
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={200: s.IpUsagePageSerializer, **errors(403)},
        operation_id="ip_usage_list",
    )
    def get(self, request, ip_id: str):
        page = request_page(
            request, selectors.ip_usage(viewer=request.user, ip_id=ip_id), keys=["created_at", "id"]
        )
        return Response(page_response_data(page, s.IpUsageSerializer(page.items, many=True).data))


# ---- revenue ----


def event_request(fields: dict) -> ledger.EventRequest:
    return ledger.EventRequest(
        event_id=fields["event_id"],
        post_id=fields["post_id"],
        amount_minor=fields["amount_minor"],
        currency=fields["currency"],
        kind=fields["kind"],
        reverses_event_id=fields.get("reverses"),
    )


def recorded_payload(recorded: ledger.RecordedEvent) -> dict:
    return {"event_id": recorded.event_id, "splits": [split_payload(x) for x in recorded.splits]}


def batch_result(item, outcome: ledger.RecordedEvent | ApiError | None) -> dict:
    """One event's result in a batch: its single request's answer, with 404 and 422 given as 400."""
    if isinstance(item, s.InvalidItem):
        raw_id = item.raw.get("event_id") if isinstance(item.raw, dict) else None
        return {
            "event_id": raw_id if isinstance(raw_id, str) else None,
            "status": 400,
            "error": error_body("invalid", "The event is not valid.", item.error.detail)["error"],
        }
    if isinstance(outcome, ApiError):
        return {
            "event_id": item["event_id"],
            "status": 409 if outcome.status_code == 409 else 400,
            "error": error_body(outcome.code, outcome.message, outcome.details)["error"],
        }
    return {"status": 201 if outcome.created else 200, **recorded_payload(outcome)}


class RevenueEventView(APIView):
    permission_classes = [RecordsRevenueEvents]

    @extend_schema(
        request=s.RevenueEventRequestSerializer,
        responses={
            201: s.RevenueEventResponseSerializer,
            200: OpenApiResponse(s.RevenueEventResponseSerializer, description="a replay of the same event"),
            **{code: ErrorSerializer for code in (400, 401, 403, 404, 409, 422)},
        },
    )
    def post(self, request):
        data = s.RevenueEventRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recorded = ledger.record_revenue_event(**asdict(event_request(data.validated_data)))
        return Response(
            recorded_payload(recorded),
            status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
        )


class RevenueEventBatchView(APIView):
    permission_classes = [RecordsRevenueEvents]
    parser_classes = [JSONParser]

    @extend_schema(
        request=s.RevenueEventBatchRequestSerializer,
        responses={
            200: OpenApiResponse(
                s.RevenueEventBatchResponseSerializer,
                description="a result per event, in request order; each event is recorded, replayed "
                "or refused exactly as by POST /revenue/events, after the events before it",
            ),
            400: OpenApiResponse(ErrorSerializer, description="no `events` list, or more than 1,000"),
            **{code: ErrorSerializer for code in (401, 403, 413, 415)},
        },
    )
    def post(self, request):
        data = s.RevenueEventBatchRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        items = data.validated_data["events"]
        outcomes = iter(
            ledger.record_revenue_events(
                events=[event_request(item) for item in items if not isinstance(item, s.InvalidItem)]
            )
        )
        results = [
            batch_result(item, None if isinstance(item, s.InvalidItem) else next(outcomes)) for item in items
        ]
        return Response({"results": results})


class BooksCheckView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: s.BooksCheckSerializer})
    def get(self, request):
        return Response(s.BooksCheckSerializer(ledger.check_books()).data)


class MyEarningsView(APIView):
    @extend_schema(parameters=PERIOD_PARAMS, responses={200: s.EarningsSerializer})
    def get(self, request):
        start, end = read_period(request.query_params)
        earnings = ledger.earnings_of_user(user_id=request.user.pk, start=start, end=end)
        return Response(s.EarningsSerializer({"from": start, "to": end, **earnings}).data)


# ---- lineage ----


class PostRemixesView(APIView):
    @extend_schema(
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={200: PostPageSerializer},
        operation_id="posts_remixes_list",
    )
    def get(self, request, post_id: str):
        post = get_visible_post(viewer=request.user, post_id=post_id)
        page = request_page(
            request, selectors.remixes_of(viewer=request.user, post=post), keys=["created_at", "id"]
        )
        return Response(post_page_data(page, request))


class PostLineageView(APIView):
    @extend_schema(responses={200: s.LineageSerializer})
    def get(self, request, post_id: str):
        post = get_visible_post(viewer=request.user, post_id=post_id)
        chain = selectors.lineage(viewer=request.user, post=post)
        return Response(s.LineageSerializer(chain, context={"request": request}).data)
