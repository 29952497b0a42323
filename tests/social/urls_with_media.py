"""The project's URLs with the media route that SERVE_MEDIA mounts (tests run with DEBUG off)."""

from config.urls import urlpatterns as project_urlpatterns
from social.media_access import media_urlpatterns

urlpatterns = [*project_urlpatterns, *media_urlpatterns()]
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
