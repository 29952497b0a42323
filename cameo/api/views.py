from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from cameo import selectors, services
from cameo.api import serializers as s
from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.pagination import page_response_data, request_page
from core.schema import errors
from core.throttles import WriteRateThrottle
from social.api.serializers import PostPageSerializer, post_page_data
from social.selectors import get_active_user_or_404


class CameoListCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="cameos_list", parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.CameoPageSerializer}
    )
    def get(self, request):
        page = request_page(request, selectors.owned_cameos(owner=request.user), keys=["created_at", "id"])
        return Response(page_response_data(page, s.CameoSerializer(page.items, many=True).data))

    @extend_schema(
        request=s.CameoCreateSerializer, responses={202: s.CameoSerializer, **errors(403, 409, 422)}
    )
    def post(self, request):
        data = s.CameoCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cameo = services.start_enrollment(owner=request.user, **data.validated_data)
        return Response(s.CameoSerializer(cameo).data, status=status.HTTP_202_ACCEPTED)


class CameoDetailView(APIView):
    @extend_schema(responses={200: s.CameoSerializer})
    def get(self, request, cameo_id: str):
        return Response(
            s.CameoSerializer(selectors.get_cameo_for(viewer=request.user, cameo_id=cameo_id)).data
        )

    @extend_schema(
        request=s.CameoUpdateSerializer, responses={200: s.CameoSerializer, **errors(403, 409, 422)}
    )
    def patch(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        data = s.CameoUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        cameo = services.update_cameo(actor=request.user, cameo=cameo, **data.validated_data)
        return Response(s.CameoSerializer(cameo).data)

    @extend_schema(responses={204: None})
    def delete(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        services.erase_cameo(actor=request.user, cameo=cameo)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameoUsableView(APIView):
    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.CameoPageSerializer})
    def get(self, request):
        page = request_page(request, selectors.usable_cameos(user=request.user), keys=["created_at", "id"])
        return Response(page_response_data(page, s.CameoSerializer(page.items, many=True).data))


class CameoTrendingView(APIView):
    @extend_schema(
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={200: s.TrendingCameoPageSerializer, **errors(400)},
        description="Cameos anyone may use, by published appearances over the last 7 days (decayed).",
    )
    def get(self, request):
        cameos = selectors.trending_cameos(viewer=request.user)
        page = request_page(request, cameos, keys=["trending_key", "id"])
        return Response(page_response_data(page, s.TrendingCameoSerializer(page.items, many=True).data))


class CameoGrantView(APIView):
    @extend_schema(request=None, responses={204: None, **errors(400, 403)})
    def put(self, request, cameo_id: str, username: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        services.grant_use(actor=request.user, cameo=cameo, grantee=get_active_user_or_404(username=username))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def delete(self, request, cameo_id: str, username: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        services.revoke_grant(
            actor=request.user, cameo=cameo, grantee=get_active_user_or_404(username=username)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameoRequestsView(APIView):
    throttle_classes = [WriteRateThrottle]
    throttle_scope = "cameo_request"

    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.CameoRequestPageSerializer})
    def get(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        page = request_page(request, selectors.requests_for(cameo=cameo), keys=["created_at", "id"])
        return Response(page_response_data(page, s.CameoRequestSerializer(page.items, many=True).data))

    @extend_schema(request=s.CameoRequestCreateSerializer, responses={202: s.CameoRequestSerializer})
    def post(self, request, cameo_id: str):
        cameo = selectors.get_cameo_for(viewer=request.user, cameo_id=cameo_id)
        data = s.CameoRequestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.request_use(requester=request.user, cameo=cameo, **data.validated_data)
        return Response(s.CameoRequestSerializer(created).data, status=status.HTTP_202_ACCEPTED)


class CameoAppearancesView(APIView):
    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: PostPageSerializer})
    def get(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id, include_deleted=True)
        posts = selectors.appearance_posts(cameo=cameo, viewer=request.user)
        page = request_page(request, posts, keys=["created_at", "id"])
        return Response(post_page_data(page, request))


class CameoAuditView(APIView):
    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.AuditPageSerializer})
    def get(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id, include_deleted=True)
        page = request_page(request, selectors.audit_of(cameo=cameo), keys=["at", "id"])
        return Response(page_response_data(page, s.AuditEntrySerializer(page.items, many=True).data))


# --- protected likenesses (staff) -------------------------------------------------------------


class ProtectedLikenessListCreateView(APIView):
    # The services refuse non-staff too; refusing here first answers 403 whatever the body.
    permission_classes = [IsAdminUser]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="protected_likenesses_list",
        parameters=CURSOR_PAGE_PARAMETERS,
        responses={200: s.ProtectedLikenessPageSerializer},
    )
    def get(self, request):
        likenesses = selectors.protected_likenesses_for(viewer=request.user)
        page = request_page(request, likenesses, keys=["created_at", "id"])
        return Response(page_response_data(page, s.ProtectedLikenessSerializer(page.items, many=True).data))

    @extend_schema(
        request=s.ProtectedLikenessCreateSerializer,
        responses={201: s.ProtectedLikenessSerializer, **errors(409, 422)},
    )
    def post(self, request):
        data = s.ProtectedLikenessCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        likeness = services.create_protected_likeness(actor=request.user, **data.validated_data)
        return Response(s.ProtectedLikenessSerializer(likeness).data, status=status.HTTP_201_CREATED)


class ProtectedLikenessDetailView(APIView):
    permission_classes = [IsAdminUser]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses={200: s.ProtectedLikenessSerializer})
    def get(self, request, likeness_id: str):
        likeness = selectors.get_protected_likeness_for(viewer=request.user, likeness_id=likeness_id)
        return Response(s.ProtectedLikenessSerializer(likeness).data)

    @extend_schema(
        request=s.ProtectedLikenessUpdateSerializer,
        responses={200: s.ProtectedLikenessSerializer, **errors(409, 422)},
    )
    def patch(self, request, likeness_id: str):
        likeness = selectors.get_protected_likeness_for(viewer=request.user, likeness_id=likeness_id)
        data = s.ProtectedLikenessUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        likeness = services.update_protected_likeness(
            actor=request.user, likeness=likeness, **data.validated_data
        )
        return Response(s.ProtectedLikenessSerializer(likeness).data)

    @extend_schema(responses={204: None})
    def delete(self, request, likeness_id: str):
        likeness = selectors.get_protected_likeness_for(viewer=request.user, likeness_id=likeness_id)
        services.delete_protected_likeness(actor=request.user, likeness=likeness)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameoVerifiedAsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=s.CameoVerifiedAsSerializer, responses={200: s.CameoSerializer})
    def put(self, request, cameo_id: str):
        cameo = selectors.get_cameo_for_staff(viewer=request.user, cameo_id=cameo_id)
        data = s.CameoVerifiedAsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        likeness_id = data.validated_data["protected_likeness_id"]
        likeness = (
            None
            if likeness_id is None
            else selectors.get_protected_likeness_for(viewer=request.user, likeness_id=likeness_id)
        )
        cameo = services.verify_cameo_as(actor=request.user, cameo=cameo, protected_likeness=likeness)
        return Response(s.CameoSerializer(cameo).data)
