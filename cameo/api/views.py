from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from cameo import selectors, services
from cameo.api import serializers as s
from core.api.schema import CURSOR_PAGE_PARAMETERS
from core.pagination import page_response_data, request_page
from social.api.serializers import PostPageSerializer, post_page_data
from social.selectors import get_active_user_or_404


class CameoListCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.CameoPageSerializer})
    def get(self, request):
        page = request_page(request, selectors.owned_cameos(owner=request.user), keys=["created_at", "id"])
        return Response(page_response_data(page, s.CameoSerializer(page.items, many=True).data))

    @extend_schema(request=s.CameoCreateSerializer, responses={202: s.CameoSerializer})
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

    @extend_schema(request=s.CameoUpdateSerializer, responses={200: s.CameoSerializer})
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


class CameoGrantView(APIView):
    @extend_schema(request=None, responses={204: None})
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
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        posts = selectors.appearance_posts(cameo=cameo, viewer=request.user)
        page = request_page(request, posts, keys=["created_at", "id"])
        return Response(post_page_data(page, request))


class CameoAuditView(APIView):
    @extend_schema(parameters=CURSOR_PAGE_PARAMETERS, responses={200: s.AuditPageSerializer})
    def get(self, request, cameo_id: str):
        cameo = selectors.get_owned_cameo(owner=request.user, cameo_id=cameo_id)
        page = request_page(request, selectors.audit_of(cameo=cameo), keys=["at", "id"])
        return Response(page_response_data(page, s.AuditEntrySerializer(page.items, many=True).data))
