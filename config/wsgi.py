"""WSGI entry point: the REST API (granian in production; see the README)."""

import os

from django.core.wsgi import get_wsgi_application

from config.env import load_dev_env

load_dev_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from core.middleware import SpoolBodyWithoutLength  # noqa: E402 - once Django is set up

# A body without Content-Length is read here, up to MAX_REQUEST_BODY_BYTES (core.middleware).
application = SpoolBodyWithoutLength(django_application)

from core import text_embeddings  # noqa: E402
from core.startup import freeze_loaded_objects, require_services  # noqa: E402

require_services()
text_embeddings.preload()
freeze_loaded_objects()
