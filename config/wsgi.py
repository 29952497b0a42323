"""WSGI entry point: the REST API (granian in production; see the README)."""

import os

from django.core.wsgi import get_wsgi_application

from config.env import load_dev_env

load_dev_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from core.startup import freeze_loaded_objects, require_services  # noqa: E402

require_services()
freeze_loaded_objects()
