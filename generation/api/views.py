from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.pagination import page_response_data, request_page
from core.schema import errors
from generation import selectors, services
from generation.api import serializers as s

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The same key returns the same job (at most 128 characters).",
)


def _requested(request, generation_request: services.GenerationRequest) -> Response:
    """Requests the job (the same Idempotency-Key returns the same job) and answers 202 with it."""
    job, _created = services.request_generation(
        user=request.user,
        request=generation_request,
        idempotency_key=request.headers.get("Idempotency-Key") or "",
    )
    return Response(s.GenerationSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class GenerationsView(APIView):
    @extend_schema(
        request=s.GenerationCreateSerializer,
        responses={202: s.GenerationSerializer, **errors(403, 404, 409, 422, 429)},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        data = s.GenerationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _requested(request, services.GenerationRequest(**data.validated_data))

    @extend_schema(
        operation_id="generations_list",
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={200: s.GenerationPageSerializer},
    )
    def get(self, request):
        page = request_page(request, selectors.generations_of(user=request.user), keys=["created_at", "id"])
        return Response(page_response_data(page, s.GenerationSerializer(page.items, many=True).data))


class StitchView(APIView):
    @extend_schema(
        operation_id="posts_stitch",
        request=s.StitchCreateSerializer,
        responses={202: s.GenerationSerializer, **errors(403, 404, 409, 422, 429)},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        data = s.StitchCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Prompt, duration and aspect ratio come from the sources (services.stitch_request).
        stitch = services.GenerationRequest(
            prompt="",
            duration_s=0,
            aspect_ratio="",
            mode="stitch",
            source_ids=data.validated_data["post_ids"],
            caption=data.validated_data["caption"],
        )
        return _requested(request, stitch)


class GenerationDetailView(APIView):
    @extend_schema(responses={200: s.GenerationSerializer})
    def get(self, request, generation_id):
        job = services.get_own_generation(user=request.user, job_id=generation_id)
        return Response(s.GenerationSerializer(job).data)


class GenerationCancelView(APIView):
    @extend_schema(request=None, responses={200: s.GenerationSerializer, **errors(409)})
    def post(self, request, generation_id):
        job = services.cancel_generation(user=request.user, job_id=generation_id)
        return Response(s.GenerationSerializer(job).data)


class PostProvenanceView(APIView):
    @extend_schema(responses={200: s.ProvenanceSerializer, **errors(403)})
    def get(self, request, post_id):
        record = selectors.provenance_for(viewer=request.user, post_id=post_id)
        return Response(s.ProvenanceSerializer(record).data)


class ProvenanceVerifyView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": s.VerifyRequestSerializer},
        responses={200: s.VerifyResultSerializer},
    )
    def post(self, request):
        data = s.VerifyRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = selectors.verify_upload(data.validated_data["file"], viewer=request.user)
        return Response(s.VerifyResultSerializer(result).data)
