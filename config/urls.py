from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.errors import json_not_found

# generation before social: its `posts/stitch` must be matched before social's `posts/<post_id>`.
api_v1 = [
    path("", include("core.api.urls")),
    path("", include("generation.api.urls")),
    path("", include("social.api.urls")),
    path("", include("cameo.api.urls")),
    path("", include("remix.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

# Unknown API paths answer in the API's error format, DEBUG or not (DEBUG's 404 page is HTML), and
# for every method: without csrf_exempt a POST without a CSRF cookie got Django's HTML 403 page.
urlpatterns += [re_path(r"^api/", csrf_exempt(json_not_found))]

# Published posts' media to anyone, the rest at signed URLs only (social.media_access).
if settings.SERVE_MEDIA:
    from social.media_access import media_urlpatterns

    urlpatterns += media_urlpatterns()

handler400 = "core.errors.json_bad_request"
handler403 = "core.errors.json_forbidden"
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
