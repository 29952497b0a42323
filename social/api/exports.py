"""`POST /me/export`, `GET /me/exports`, `GET /me/exports/{id}`: a user's data export (social/exports.py).

The ZIP is offered at a signed URL that expires, as a draft's media are (MEDIA_URL_TTL_S; on S3 a
presigned URL): each read signs it afresh until the export itself expires (`expires_at`, when its
file is deleted).
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.pagination import page_response_data, request_page
from core.serializers import ErrorSerializer, IdField
from social import exports
from social.api.serializers import post_rendering
from social.models import ExportStatus, PostStatus

EVENTS = (
    "Progress reaches the owner's websockets as `{type: export.progress, id, progress}` and the end "
    "as `{type: export.finished, id, status}`."
)
NOT_AUTHENTICATED = OpenApiResponse(ErrorSerializer, description="`not_authenticated`")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="`not_found`: no such export, or another user's")


class ExportErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class DataExportSerializer(serializers.Serializer):
    id = IdField()
    status = serializers.ChoiceField(
        choices=ExportStatus.choices,
        help_text="queued, running, ready (download_url set), failed (error set), or expired "
        "(the file was deleted at expires_at)",
    )
    progress = serializers.FloatField(help_text="0..1")
    download_url = serializers.SerializerMethodField(
        help_text="while ready: the ZIP, at a signed URL that works for MEDIA_URL_TTL_S seconds "
        "(read the export again for a fresh one)"
    )
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="when a ready export's file is deleted (EXPORT_TTL_S after it was made)"
    )
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField(help_text="of the ZIP, once ready")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.SerializerMethodField()

    def get_download_url(self, export) -> str | None:
        if export.status != ExportStatus.READY or not export.file.name:
            return None
        # Signed and expiring exactly as a draft's media are: one rule, in PostRendering.url.
        return post_rendering(self.context).url(export.file.name, status=PostStatus.DRAFT)

    def get_error(self, export) -> ExportErrorSerializer(allow_null=True):  # type: ignore[valid-type]
        if export.status != ExportStatus.FAILED:
            return None
        return {"code": export.error_code, "message": export.error_message}


class DataExportPageSerializer(serializers.Serializer):
    results = DataExportSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ExportRequestView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: DataExportSerializer,
            401: NOT_AUTHENTICATED,
            409: OpenApiResponse(
                ErrorSerializer,
                description="`export_in_progress`: one export per account at a time; details `{id}` "
                "name the export in flight",
            ),
        },
        description="Starts an export of everything the account made: one ZIP with its posts (video "
        "files, prompts, creation records), generations, comments, likes, follows, cameos' audit trails "
        "(no biometrics), earnings and notifications, as JSON beside the media, and a manifest.json "
        "listing every file with its size and sha256. " + EVENTS,
    )
    def post(self, request):
        export = exports.request_export(user=request.user)
        return Response(
            DataExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class ExportListView(APIView):
    @extend_schema(
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={
            200: DataExportPageSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`invalid` cursor or limit"),
            401: NOT_AUTHENTICATED,
        },
        description="The account's exports, newest first.",
        operation_id="me_exports_list",
    )
    def get(self, request):
        page = request_page(request, exports.exports_of(user=request.user), keys=["created_at", "id"])
        serialized = DataExportSerializer(page.items, many=True, context={"request": request}).data
        return Response(page_response_data(page, serialized))


class ExportDetailView(APIView):
    @extend_schema(
        responses={200: DataExportSerializer, 401: NOT_AUTHENTICATED, 404: NOT_FOUND},
        description="One of the account's exports; `download_url` is signed afresh at each read. " + EVENTS,
    )
    def get(self, request, export_id: str):
        export = exports.get_own_export(user=request.user, export_id=export_id)
        return Response(DataExportSerializer(export, context={"request": request}).data)
