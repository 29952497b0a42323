"""Settings, all read from the environment (see README.md for the names)."""

from datetime import timedelta
from pathlib import Path

import dj_database_url

from config.env import (
    BASE_DIR,
    data_dir,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
)

DEBUG = env_bool("DEBUG", False)

if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", "development-only-insecure-key")
else:
    SECRET_KEY = env_required("SECRET_KEY", "a secret key is required when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
)
CORS_EXPOSE_HEADERS = ("retry-after", "x-request-id")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # Refresh tokens are rotated and a used one refused: simplejwt keeps the issued ones and a
    # blacklist.
    "rest_framework_simplejwt.token_blacklist",
    "core",
    "social",
    "cameo",
    "remix",
    "generation",
]

MIDDLEWARE = [
    "core.middleware.RequestLogMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = env_required(
    "DATABASE_URL",
    "point it at PostgreSQL with the pgvector extension (postgresql://user:pass@host:5432/name), "
    "or start the embedded one with `make run`.",
)
# A kept connection (DB_CONN_MAX_AGE) is checked before each request reuses it, so one the database
# closed (a restart) is replaced instead of failing that request.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgresql://...).")
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5))
# Server-side parameter binding lets psycopg prepare a statement once a connection has run it
# DB_PREPARE_THRESHOLD times, so the hot reads (a feed page, the token's user) skip PostgreSQL's
# planner, which cost more than running them. Behind a pooler that does not keep prepared
# statements per client (PgBouncer in transaction mode before 1.21), set DB_PREPARE_THRESHOLD=0.
DB_PREPARE_THRESHOLD = env_int("DB_PREPARE_THRESHOLD", 5)
if DB_PREPARE_THRESHOLD > 0:
    DATABASES["default"]["OPTIONS"].setdefault("server_side_binding", True)
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", DB_PREPARE_THRESHOLD)
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", None)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_required(
    "REDIS_URL", "point it at Redis (redis://host:6379/0), or start the embedded one with `make run`."
)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# A worker whose acknowledgement met an unreachable Redis must go on taking messages.
CELERY_BROKER_TRANSPORT = (
    "core.broker_transport:Transport" if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
)

# The cache and the channel layer are optional at run time: a call that Redis does not answer in
# time falls back (a cache miss, a dropped websocket event), and a circuit breaker then leaves that
# dependency alone for BREAKER_RESET_S before one call tries it again (core/breaker.py).
BREAKER_RESET_S = env_float("BREAKER_RESET_S", 5.0)
# Connect and read timeout of every cache call; a local Redis answers in well under a millisecond.
CACHE_TIMEOUT_MS = env_int("CACHE_TIMEOUT_MS", 50)
CACHES = {
    "default": {
        "BACKEND": "core.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "rf"),
        "OPTIONS": {
            "socket_connect_timeout": CACHE_TIMEOUT_MS / 1000,
            "socket_timeout": CACHE_TIMEOUT_MS / 1000,
            "breaker_reset_s": BREAKER_RESET_S,
        },
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Each socket's consumer waits on Redis in blocking pops of 5 s; redis-py's default socket
        # timeout is also 5 s, which closed every socket idle that long. Longer than the pop, so a
        # Redis that stops answering still ends the wait.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "prefix": env_str("CHANNEL_PREFIX", "rf-ws"),
        },
    }
}
# The longest a websocket push (core/realtime.py) may hold up the request or job that sends it.
REALTIME_SEND_TIMEOUT_S = env_float("REALTIME_SEND_TIMEOUT_S", 0.5)

AUTH_USER_MODEL = "social.User"
# A follow undone and made again within this many seconds notifies its followee once.
FOLLOW_NOTIFY_AGAIN_AFTER_S = env_int("FOLLOW_NOTIFY_AGAIN_AFTER_S", 24 * 3600)
# Teens (API.md): posts the feed serves a minor per UTC day unless their guardian sets another
# number, and how long a code a minor asks for stays redeemable by their guardian-to-be.
SCROLL_LIMIT_MINOR = env_int("SCROLL_LIMIT_MINOR", 100)
GUARDIAN_CODE_TTL_S = env_int("GUARDIAN_CODE_TTL_S", 24 * 3600)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ],
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
MEDIA_URL = env_str("MEDIA_URL", "/media/")
MEDIA_ROOT = env_str("MEDIA_ROOT", str(data_dir() / "media"))
SERVE_MEDIA = env_bool("SERVE_MEDIA", DEBUG)
# Media of drafts and removed posts are served only at signed URLs valid this long (seconds); on S3
# every media URL is presigned for this long (core.storage.MediaS3Storage).
MEDIA_URL_TTL_S = env_int("MEDIA_URL_TTL_S", 3600)
# Data exports (social/exports.py): a ready export's ZIP is deleted this long after it was made
# (its download URL is signed for MEDIA_URL_TTL_S at each read). A running export whose worker has
# not reported for EXPORT_STALE_AFTER_S is taken again, or failed after EXPORT_MAX_ATTEMPTS; a
# queued one no worker claimed EXPORT_REDISPATCH_AFTER_S after it was sent is sent again. The
# periodic jobs (dispatch, reap, delete expired) run every EXPORT_PERIODIC_EVERY_S.
EXPORT_TTL_S = env_int("EXPORT_TTL_S", 7 * 24 * 3600)
EXPORT_STALE_AFTER_S = env_int("EXPORT_STALE_AFTER_S", 300)
EXPORT_MAX_ATTEMPTS = env_int("EXPORT_MAX_ATTEMPTS", 3)
EXPORT_REDISPATCH_AFTER_S = env_int("EXPORT_REDISPATCH_AFTER_S", 300)
EXPORT_PERIODIC_EVERY_S = env_int("EXPORT_PERIODIC_EVERY_S", 10)

# Biometric files (verification videos, face crops, reference faces) live in their own private
# storage, never under MEDIA_URL: a folder outside MEDIA_ROOT, or a bucket without public access.
BIOMETRICS_ROOT = env_str("BIOMETRICS_ROOT", str(data_dir() / "biometrics"))
AWS_BIOMETRICS_BUCKET_NAME = env_str("AWS_BIOMETRICS_BUCKET_NAME", None)

# S3-compatible storage when a bucket is configured; the local disk otherwise.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", None)
if AWS_STORAGE_BUCKET_NAME:
    STORAGES = {
        "default": {
            "BACKEND": "core.storage.MediaS3Storage",
            "OPTIONS": {"querystring_expire": MEDIA_URL_TTL_S},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
if AWS_BIOMETRICS_BUCKET_NAME:
    STORAGES["biometrics"] = {
        "BACKEND": "core.storage.PrivateS3Storage",
        "OPTIONS": {"bucket_name": AWS_BIOMETRICS_BUCKET_NAME},
    }
else:
    STORAGES["biometrics"] = {"BACKEND": "core.storage.PrivateFileSystemStorage"}  # BIOMETRICS_ROOT
_biometrics_exposed = (
    AWS_BIOMETRICS_BUCKET_NAME == AWS_STORAGE_BUCKET_NAME
    if AWS_BIOMETRICS_BUCKET_NAME
    else Path(MEDIA_ROOT).resolve()
    in (Path(BIOMETRICS_ROOT).resolve(), *Path(BIOMETRICS_ROOT).resolve().parents)
)
if _biometrics_exposed:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("BIOMETRICS_ROOT / AWS_BIOMETRICS_BUCKET_NAME must be apart from the media.")

# JSON bodies stay small; uploads stream to disk and are limited per endpoint. No body is read
# past MAX_REQUEST_BODY_BYTES, with or without Content-Length (core.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_JSON_BODY_BYTES", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 25 * 1024 * 1024)

TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "core.schema.ErrorDocumentingSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_str("AUTH_THROTTLE_RATE", "20/min"),
        # Per username, from any number of addresses: guessing one account's password stays slow.
        "auth_username": env_str("AUTH_USERNAME_THROTTLE_RATE", "10/min"),
        # Writes that reach other people, per user (core.throttles.WriteRateThrottle).
        "follow": env_str("FOLLOW_RATE", "60/hour"),
        "comment": env_str("COMMENT_RATE", "30/min"),
        "cameo_request": env_str("CAMEO_REQUEST_RATE", "20/hour"),
        # Redeeming guardian codes: guessing one stays slow.
        "guardian_link": env_str("GUARDIAN_LINK_RATE", "10/hour"),
    },
    # Proxies in front of the app whose X-Forwarded-For entries are trusted; 0: the socket's address.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 30)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
    # Each refresh hands out a new refresh token and retires the one used: a stolen token works
    # at most until its owner next refreshes.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Reelforge API",
    "DESCRIPTION": "The API of a short-video social app in which every video is generated.",
    "VERSION": "1.0.0",
    # Choice sets shared by fields of different names, or names shared by different sets (`kind`).
    "ENUM_NAME_OVERRIDES": {
        "CameoKindEnum": "cameo.models.CameoKind",
        "DependencyStatusEnum": "core.api.views.DEPENDENCY_STATUSES",
    },
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A new pool process loads the video models before it reports up (generation.tasks); Celery's
# default of 4 s killed every replacement of a dead pool process while it loaded, in a loop.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 300.0)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 20 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 25 * 60)
BROKER_CONNECT_TIMEOUT_S = env_float("BROKER_CONNECT_TIMEOUT_S", 1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redelivery of an unacknowledged task must wait longer than the longest GPU job may run.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 60 * 60),
    # A broker that is down or paused must not hold a request: sending fails within these bounds
    # and the job waits in the outbox (generation.services.dispatch_generations).
    "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
    "socket_timeout": env_float("BROKER_SOCKET_TIMEOUT_S", 3.0),
}
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_CONNECT_TIMEOUT_S
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False

# /health runs its checks concurrently, each bounded by this, so it answers within about this long
# whatever is down; a check that answers but takes over HEALTH_SLOW_MS is reported `slow`.
HEALTH_CHECK_TIMEOUT_S = env_float("HEALTH_CHECK_TIMEOUT_S", 1.0)
HEALTH_SLOW_MS = env_int("HEALTH_SLOW_MS", 250)
STARTUP_CHECKS = env_bool("STARTUP_CHECKS", True)

GENERATION_DAILY_LIMITS = {
    "free": env_int("DAILY_LIMIT_FREE", 30),
    "pro": env_int("DAILY_LIMIT_PRO", 300),
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR", "handlers": ["console"], "propagate": False},
        "django.server": {"level": "WARNING"},
        "request": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# --- core: text embeddings and the theme matcher ---
TEXT_EMBEDDING_MODEL_DIR = env_str("TEXT_EMBEDDING_MODEL_DIR", None)
THEME_SIMILARITY_THRESHOLD = float(env_str("THEME_SIMILARITY_THRESHOLD", "0.40"))

# social: limits of post videos and the for_you feed
POST_VIDEO_MAX_BYTES = env_int("POST_VIDEO_MAX_BYTES", 100 * 1024 * 1024)
POST_VIDEO_MAX_SECONDS = env_int("POST_VIDEO_MAX_SECONDS", 120)
FEED_CHAIN_MAX_POSTS = env_int("FEED_CHAIN_MAX_POSTS", 500)
# Feed pages are rendered to JSON by PostgreSQL where the media storage allows it (a fixed URL
# prefix); off, Python renders them as every other list of posts.
FEED_RENDER_IN_DATABASE = env_bool("FEED_RENDER_IN_DATABASE", True)

# remix: revenue split (basis points of each revenue event) and IP detection
PLATFORM_FEE_BPS = env_int("PLATFORM_FEE_BPS", 3000)
CAMEO_SHARE_BPS = env_int("CAMEO_SHARE_BPS", 500)
REMIX_ROYALTY_BPS = env_int("REMIX_ROYALTY_BPS", 1000)
IP_SIMILARITY_THRESHOLD = float(env_str("IP_SIMILARITY_THRESHOLD", "0.6"))

# --- generation ---

# `tiny` builds the real pipeline classes from tiny seeded configs (CPU, seconds); `diffusers`
# loads real checkpoints from GENERATION_MODEL_DIR (layout in generation/backends/__init__.py).
GENERATION_BACKEND = env_str("GENERATION_BACKEND", "tiny")
GENERATION_MODEL_DIR = env_str("GENERATION_MODEL_DIR", str(data_dir() / "models"))
GENERATION_TINY_CACHE_DIR = env_str("GENERATION_TINY_CACHE_DIR", str(data_dir() / "tiny-models"))
GENERATION_DEVICE = env_str("GENERATION_DEVICE", "cpu")
GENERATION_DTYPE = env_str("GENERATION_DTYPE", "float32")
GENERATION_VAE_TILING = env_bool("GENERATION_VAE_TILING", False)
GENERATION_VAE_SLICING = env_bool("GENERATION_VAE_SLICING", False)
GENERATION_CPU_OFFLOAD = env_bool("GENERATION_CPU_OFFLOAD", False)
GENERATION_MAX_TEXT_TOKENS = env_int("GENERATION_MAX_TEXT_TOKENS", 226)
GENERATION_STEPS = env_int("GENERATION_STEPS", 2 if GENERATION_BACKEND == "tiny" else 50)
GENERATION_GUIDANCE = env_float("GENERATION_GUIDANCE", 6.0)
# Frames per second of the rendered clip; the model renders duration_s * fps + 1 frames at most
# GENERATION_MAX_FRAMES (tiny: 9 frames), and the encoder holds each frame to fill the duration.
GENERATION_FPS = env_int("GENERATION_FPS", 8)
GENERATION_MAX_FRAMES = env_int("GENERATION_MAX_FRAMES", 9 if GENERATION_BACKEND == "tiny" else 49)
GENERATION_SIZES = {
    "tiny": {"1:1": (64, 64), "9:16": (48, 80), "16:9": (80, 48)},
    "diffusers": {"1:1": (480, 480), "9:16": (480, 720), "16:9": (720, 480)},
}[GENERATION_BACKEND if GENERATION_BACKEND in ("tiny", "diffusers") else "diffusers"]
GENERATION_MAX_DURATION_S = env_int("GENERATION_MAX_DURATION_S", 10)
# A stitch (POST /posts/stitch) is at most this long in all.
STITCH_MAX_DURATION_S = env_int("STITCH_MAX_DURATION_S", 60)
# A storyboard (POST /generations with `shots`) is at most this long in all.
STORYBOARD_MAX_DURATION_S = env_int("STORYBOARD_MAX_DURATION_S", 60)
GENERATION_MAX_IN_FLIGHT = {
    "free": env_int("IN_FLIGHT_LIMIT_FREE", 2),
    "pro": env_int("IN_FLIGHT_LIMIT_PRO", 5),
}
# A running job whose worker has not reported for this long is presumed dead and retried.
GENERATION_STALE_AFTER_S = env_int("GENERATION_STALE_AFTER_S", 120)
GENERATION_MAX_ATTEMPTS = env_int("GENERATION_MAX_ATTEMPTS", 3)
GENERATION_PLATFORM_MARK = env_str("GENERATION_PLATFORM_MARK", "Reelforge")
GENERATION_PROVIDER = env_str("GENERATION_PROVIDER", "reelforge")
# Periodic work, run by `manage.py run_periodic` (core.periodic): requeue jobs whose worker died,
# and send jobs the broker has not taken (the outbox) or whose message may have been lost.
GENERATION_REAP_EVERY_S = env_int("GENERATION_REAP_EVERY_S", 30)
GENERATION_DISPATCH_EVERY_S = env_int("GENERATION_DISPATCH_EVERY_S", 5)
# A queued job no worker has claimed this long after it was sent is sent again.
GENERATION_REDISPATCH_AFTER_S = env_int("GENERATION_REDISPATCH_AFTER_S", 300)
GENERATION_PRELOAD_MODELS = env_bool("GENERATION_PRELOAD_MODELS", True)
GENERATION_VERIFY_MAX_BYTES = env_int("GENERATION_VERIFY_MAX_BYTES", 20 * 1024 * 1024)

# --- cameo: identity encoders, enrollment thresholds ---
IDENTITY_ENCODER = env_str("IDENTITY_ENCODER", "dlib")
INSIGHTFACE_MODEL_DIR = env_str("INSIGHTFACE_MODEL_DIR", None)
INSIGHTFACE_PACK = env_str("INSIGHTFACE_PACK", "buffalo_l")
CAMEO_VIDEO_MAX_BYTES = env_int("CAMEO_VIDEO_MAX_BYTES", 20 * 1024 * 1024)
CAMEO_VIDEO_MAX_SECONDS = env_float("CAMEO_VIDEO_MAX_SECONDS", 15.0)
CAMEO_SAMPLE_FRAMES = env_int("CAMEO_SAMPLE_FRAMES", 8)
# Enrollments the broker could not take, or whose analysis was lost, are sent again (core.outbox).
CAMEO_ENROLL_DISPATCH_EVERY_S = env_int("CAMEO_ENROLL_DISPATCH_EVERY_S", 10)
CAMEO_ENROLL_RESEND_AFTER_S = env_int("CAMEO_ENROLL_RESEND_AFTER_S", 300)
CAMEO_MIN_FACE_PX = env_int("CAMEO_MIN_FACE_PX", 64)
# Cosine distances between templates of one encoder; see cameo/enrollment.py for the measurements.
CAMEO_MATCH_MAX_DISTANCE = env_float("CAMEO_MATCH_MAX_DISTANCE", 0.05)
CAMEO_CONSISTENCY_MAX_DISTANCE = env_float("CAMEO_CONSISTENCY_MAX_DISTANCE", 0.06)
# A protected likeness's reference photo: bytes checked before reading it, pixels before decoding it.
PROTECTED_REFERENCE_MAX_BYTES = env_int("PROTECTED_REFERENCE_MAX_BYTES", 10 * 1024 * 1024)
PROTECTED_REFERENCE_MAX_PIXELS = env_int("PROTECTED_REFERENCE_MAX_PIXELS", 40_000_000)
CAMEO_MIN_SHARPNESS = env_float("CAMEO_MIN_SHARPNESS", 40.0)
CAMEO_MIN_BRIGHTNESS = env_float("CAMEO_MIN_BRIGHTNESS", 40.0)
CAMEO_MIN_MOTION = env_float("CAMEO_MIN_MOTION", 1.5)
# insightface's liveness add-on (used when <INSIGHTFACE_MODEL_DIR>/addons/liveness.onnx is present):
# the median live score of the clip's faces must reach this (the add-on's own default threshold).
CAMEO_MIN_LIVE_SCORE = env_float("CAMEO_MIN_LIVE_SCORE", 0.8)
# Candidates the HNSW index visits per likeness search (pgvector's hnsw.ef_search): 200 found the stored
# template of every re-enrollment among 200k (40: 87%), p99 56 ms; bench/README.md, "Cameos".
CAMEO_HNSW_EF_SEARCH = env_int("CAMEO_HNSW_EF_SEARCH", 200)
