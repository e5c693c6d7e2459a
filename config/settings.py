"""Steward settings: behaviour comes from environment variables with safe defaults.

Embedded default (no servers): SQLite in var/ (WAL mode) and Celery over kombu's
filesystem transport in var/. Production/CI: DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (redis:// or amqp://).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


VAR_DIR = Path(os.environ.get("STEWARD_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# Demo mode shows the demo logins on the login page; it is never on when DEBUG is off.
DEMO_MODE = DEBUG and env_bool("STEWARD_DEMO", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-dev-only-key-set-SECRET_KEY-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "teams",
    "governance",
    "recsys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "governance.audit.CorrelationIdMiddleware",
    "teams.api.middleware.ApiInputGuardMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "teams.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'steward.sqlite3'}"
# Keep a connection open across requests (a new one per request costs ~2 ms of a search);
# checked before reuse, so a restarted database server is reconnected to.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server and the worker read while the other writes;
        # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file (not :memory:) so that a worker process can open the test database too.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("STEWARD_TEST_SQLITE", str(VAR_DIR / "test_steward.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users get nothing.
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "teams:org_chart"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"
ARTIFACT_ROOT = Path(os.environ.get("ARTIFACT_ROOT", VAR_DIR / "artifacts"))

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "steward@localhost")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
STEWARD_BASE_URL = os.environ.get("STEWARD_BASE_URL", "http://127.0.0.1:8000")
STEWARD_MAX_UPLOAD_BYTES = int(os.environ.get("STEWARD_MAX_UPLOAD_BYTES", 1024**3))
STEWARD_QUALITY_GATE_TOLERANCE = float(os.environ.get("STEWARD_QUALITY_GATE_TOLERANCE", "0.01"))
# Bounds on reading a stored dataset file (profiling, and the pipeline reading the same files), so
# a file small on disk cannot exhaust a worker: the longest line or JSON record; what a gzip/zip
# may decompress to (or a Parquet file decode to), absolute and as a multiple of its size on disk
# (the multiple is checked beyond 64 MiB only); zip members; profiling's wall-clock seconds.
STEWARD_PROFILE_MAX_LINE_BYTES = int(os.environ.get("STEWARD_PROFILE_MAX_LINE_BYTES", 16 * 1024**2))
STEWARD_PROFILE_MAX_DECOMPRESSED_BYTES = int(
    os.environ.get("STEWARD_PROFILE_MAX_DECOMPRESSED_BYTES", 4 * 1024**3)
)
STEWARD_PROFILE_MAX_RATIO = float(os.environ.get("STEWARD_PROFILE_MAX_RATIO", "100"))
STEWARD_PROFILE_MAX_ZIP_MEMBERS = int(os.environ.get("STEWARD_PROFILE_MAX_ZIP_MEMBERS", "1000"))
STEWARD_PROFILE_MAX_SECONDS = float(os.environ.get("STEWARD_PROFILE_MAX_SECONDS", "1800"))
# The torch device of a worker's pipeline jobs: auto (a CUDA GPU when the host has one), cpu,
# cuda or cuda:N. Set per worker host; a value the host cannot honour fails runs with the reason.
STEWARD_PIPELINE_DEVICE = os.environ.get("STEWARD_PIPELINE_DEVICE", "auto")
# Serving: the pipeline the search API and console answer for when none is named; how often a
# web process re-reads the active index pointer (seconds); faiss/torch threads per process.
STEWARD_SEARCH_PIPELINE = os.environ.get("STEWARD_SEARCH_PIPELINE", "product-search")
STEWARD_ACTIVE_CHECK_SECONDS = float(os.environ.get("STEWARD_ACTIVE_CHECK_SECONDS", "2"))
STEWARD_SERVING_THREADS = int(os.environ.get("STEWARD_SERVING_THREADS", "1"))

SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest ML hard time limit, or acks_late would re-deliver long jobs.
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)),
    }
    if os.environ.get("CELERY_KEY_PREFIX"):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = os.environ["CELERY_KEY_PREFIX"]
CELERY_BEAT_SCHEDULE_FILE = str(VAR_DIR / "celerybeat-schedule")

# --- REST framework ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call gets 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "teams.api.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "teams.api.schema.StewardAutoSchema",
    "EXCEPTION_HANDLER": "teams.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Steward API",
    "DESCRIPTION": "Organizational governance and ownership for the search pipeline.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The input serializers say which fields a PATCH requires (not all optional).
    "COMPONENT_SPLIT_PATCH": False,
    # Request bodies are documented as JSON (uploads name multipart themselves).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "ENUM_NAME_OVERRIDES": {
        "RaciKindEnum": "teams.choices.RaciKind",
        "AssetKindEnum": "governance.choices.AssetKind",
        "ApprovalKindEnum": "governance.choices.ApprovalKind",
        "ApprovalStateEnum": "governance.choices.ApprovalState",
        "RunKindEnum": "recsys.choices.RunKind",
        "RunStateEnum": "recsys.choices.RunState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
