"""jobsite settings: every value comes from the environment, read once here.

See `.env.example` and the README's Configuration section for each variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin, with the operators' dashboard as its site (jobsite/admin_site.py).
    "jobsite.admin_site.JobsiteAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    # Provides the key hashing and AbstractAPIKey that accounts.ApiKey builds on;
    # its own APIKey model is unused and hidden from the admin.
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_dramatiq",
    "dramatiq_crontab",
    "jobsite.broker",
    "accounts",
    "pipelines",
    "jobs",
    "audit",
]

MIDDLEWARE = [
    "jobsite.api.request_id.RequestIdMiddleware",
    "jobsite.api.slash.ApiTrailingSlashMiddleware",
    "audit.middleware.AuditMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobsite.urls"
WSGI_APPLICATION = "jobsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "jobsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share one SQLite file: WAL lets readers run
    # beside the writer, IMMEDIATE transactions take the write lock up front (no
    # lock upgrade deadlocks) and the busy timeout waits for it instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=30),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"]["NAME"] = env.str("TEST_DATABASE_NAME")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Request bodies above this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)

# --- Security headers (on whenever DEBUG is off) -------------------------------

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- REST API ------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobsite.api.authentication.ApiSecretAuthentication",
        "jobsite.api.authentication.ApiKeyAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "jobsite.api.permissions.OperationPermission",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["jobsite.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["jobsite.api.parsers.LimitedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "jobsite.api.pagination.LimitOffsetPagination",
    "EXCEPTION_HANDLER": "jobsite.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Proxies in front of the web server whose X-Forwarded-For is trusted; 0 = use the peer address.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

# Lists count exactly up to this many rows; past it PostgreSQL's estimate is used.
API_COUNT_EXACT_MAX = env.int("API_COUNT_EXACT_MAX", default=10_000)

# Requests per period for each kind of caller (DRF rate syntax: N/second|minute|hour|day).
THROTTLE_RATES = {
    "anon": env.str("THROTTLE_RATE_ANON", default="60/minute"),
    "user": env.str("THROTTLE_RATE_USER", default="1200/minute"),
    "key": env.str("THROTTLE_RATE_KEY", default="1200/minute"),
    "service": env.str("THROTTLE_RATE_SERVICE", default="") or None,
    "login": env.str("THROTTLE_RATE_LOGIN", default="10/minute"),
}

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-api-key",
    "x-request-id",
    "x-csrftoken",
)
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_TOKEN_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_TOKEN_DAYS", default=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    # A key of its own when configured, so rotating it does not touch sessions and signing.
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY,
    "VERIFYING_KEY": "",
    "AUDIENCE": None,
    "ISSUER": env.str("JWT_ISSUER", default="") or None,
    "JSON_ENCODER": None,
    "JWK_URL": None,
    "LEEWAY": 0,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "AUTH_HEADER_NAME": "HTTP_AUTHORIZATION",
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "USER_AUTHENTICATION_RULE": "rest_framework_simplejwt.authentication.default_user_authentication_rule",
    "AUTH_TOKEN_CLASSES": ("rest_framework_simplejwt.tokens.AccessToken",),
    "TOKEN_TYPE_CLAIM": "token_type",
    "TOKEN_USER_CLASS": "rest_framework_simplejwt.models.TokenUser",
    "JTI_CLAIM": "jti",
    "TOKEN_OBTAIN_SERIALIZER": "rest_framework_simplejwt.serializers.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "rest_framework_simplejwt.serializers.TokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "rest_framework_simplejwt.serializers.TokenVerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "rest_framework_simplejwt.serializers.TokenBlacklistSerializer",
    "SLIDING_TOKEN_REFRESH_EXP_CLAIM": "refresh_exp",
    "SLIDING_TOKEN_LIFETIME": timedelta(minutes=5),
    "SLIDING_TOKEN_REFRESH_LIFETIME": timedelta(days=1),
    "SLIDING_TOKEN_OBTAIN_SERIALIZER": "rest_framework_simplejwt.serializers.TokenObtainSlidingSerializer",
    "SLIDING_TOKEN_REFRESH_SERIALIZER": "rest_framework_simplejwt.serializers.TokenRefreshSlidingSerializer",
    "CHECK_REVOKE_TOKEN": True,
    "REVOKE_TOKEN_CLAIM": "hash_password",
    "CHECK_USER_IS_ACTIVE": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "jobsite API",
    "DESCRIPTION": "Submit jobs, follow them and fetch their results.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "StageRunStatusEnum": "jobs.models.StageRunStatus",
        "PrincipalTypeEnum": "audit.models.AuditLog.PrincipalType",
    },
}

# The shared secret of the trusted service principal (`X-API-Secret`); off when unset.
JOBSITE_API_SECRET = env.str("JOBSITE_API_SECRET", default="")

# --- Jobs ----------------------------------------------------------------------

JOB_STUCK_TIMEOUT_MINUTES = env.int("JOB_STUCK_TIMEOUT_MINUTES", default=15)
# Workers beat this often; one silent for WORKER_DEAD_AFTER_SECONDS is gone and its jobs are recovered.
WORKER_HEARTBEAT_SECONDS = env.int("WORKER_HEARTBEAT_SECONDS", default=5)
WORKER_DEAD_AFTER_SECONDS = env.int("WORKER_DEAD_AFTER_SECONDS", default=30)
# On SIGTERM, running stages get this long to finish before their jobs are handed back to the queue.
JOB_SHUTDOWN_GRACE_SECONDS = env.int("JOB_SHUTDOWN_GRACE_SECONDS", default=20)
# Recovery runs this often (manage.py crontab); it also re-sends jobs the broker never got.
JOB_RECOVERY_INTERVAL_SECONDS = env.int("JOB_RECOVERY_INTERVAL_SECONDS", default=10)
# A pending job older than this was not handed to the broker (it was down): recovery re-sends it.
JOB_OUTBOX_RESEND_SECONDS = env.int("JOB_OUTBOX_RESEND_SECONDS", default=5)
JOB_ORPHAN_TIMEOUT_MINUTES = env.int("JOB_ORPHAN_TIMEOUT_MINUTES", default=15)
JOB_DEFAULT_MAX_ATTEMPTS = env.int("JOB_DEFAULT_MAX_ATTEMPTS", default=3)
JOB_INPUT_MAX_BYTES = env.int("JOB_INPUT_MAX_BYTES", default=1024 * 1024)
JOB_TIME_LIMIT_SECONDS = env.int("JOB_TIME_LIMIT_SECONDS", default=3600)
# A failed stage with retries left is re-run after base * 2^(n-1) ms (capped), with jitter.
STAGE_RETRY_BACKOFF_BASE_MS = env.int("STAGE_RETRY_BACKOFF_BASE_MS", default=1000)
STAGE_RETRY_BACKOFF_MAX_MS = env.int("STAGE_RETRY_BACKOFF_MAX_MS", default=300_000)
RESULT_INLINE_MAX_BYTES = env.int("RESULT_INLINE_MAX_BYTES", default=1024 * 1024)
RESULT_TTL_DAYS = env.int("RESULT_TTL_DAYS", default=30)
ALLOW_PRIVATE_NETWORK_URLS = env.bool("ALLOW_PRIVATE_NETWORK_URLS", default=False)

# --- Dramatiq ------------------------------------------------------------------

DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default="db")
_BROKERS = {
    "db": "jobsite.broker.backend.DatabaseBroker",
    "redis": "dramatiq.brokers.redis.RedisBroker",
    "rediss": "dramatiq.brokers.redis.RedisBroker",
    "amqp": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
    "amqps": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
    "stub": "dramatiq.brokers.stub.StubBroker",
}
_broker_scheme = DRAMATIQ_BROKER_URL.split("://", 1)[0] if DRAMATIQ_BROKER_URL else "db"
if _broker_scheme not in _BROKERS:
    raise ImproperlyConfigured(
        f"DRAMATIQ_BROKER_URL must be 'db', 'stub', redis://..., or amqp://...; got {_broker_scheme!r}."
    )
DRAMATIQ_BROKER = {
    "BROKER": _BROKERS[_broker_scheme],
    "OPTIONS": {"url": DRAMATIQ_BROKER_URL} if "://" in DRAMATIQ_BROKER_URL else {},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "jobs.middleware.JobHeartbeat",
        "jobs.middleware.GracefulShutdown",
    ],
}
# "tasks" finds dramatiq-crontab's own heartbeat actor, which its scheduler sends.
DRAMATIQ_AUTODISCOVER_MODULES = ["actors", "tasks"]
# The scheduler (`manage.py crontab`) holds a lock here when set, so that only one of several runs.
DRAMATIQ_CRONTAB = {"REDIS_URL": env.str("DRAMATIQ_CRONTAB_REDIS_URL", default="") or None}
# The database broker: how long a consumer may hold a message without renewing
# its lease before the message goes back to the queue, and how often it polls.
DB_BROKER_LEASE_SECONDS = env.int("DB_BROKER_LEASE_SECONDS", default=60)
DB_BROKER_POLL_INTERVAL_MS = env.int("DB_BROKER_POLL_INTERVAL_MS", default=200)

# --- Logging -------------------------------------------------------------------

LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "jobsite.api.request_id.RequestIdLogFilter"}},
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "jobsite.logging.JsonFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("console", "json") else "console",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
}
