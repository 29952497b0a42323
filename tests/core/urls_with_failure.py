"""The project's URLs plus one view that fails, to test the 500 path."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns


class FailingView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("boom")


urlpatterns = [path("api/v1/test-failure", FailingView.as_view()), *project_urlpatterns]
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
