"""jobsite settings: every value comes from the environment, read once here.

See `.env.example` and the README's Configuration section for each variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = BASE_DIR / ".env"
# A checkout with no .env and neither DEBUG nor SECRET_KEY in the environment is a
# developer's: DEBUG defaults to on there, so that `manage.py` works as it comes.
# Anything configured (a .env, or DEBUG or SECRET_KEY set, as every deployment
# does) keeps DEBUG off unless it says otherwise.
DEVELOPMENT_DEFAULTS = not ENV_FILE.exists() and not {"DEBUG", "SECRET_KEY"} & set(env.ENVIRON)
if ENV_FILE.exists():
    environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=DEVELOPMENT_DEFAULTS)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin, with the operators' dashboard as its site, auditing every delete
    # (jobsite/admin_site.py on audit/admin_site.py).
    "jobsite.admin_site.JobsiteAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "csp",
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
    "webhooks",
]

MIDDLEWARE = [
    # First, so that they time and see every request, whatever the middleware below answers.
    "jobsite.observability.middleware.HttpMetricsMiddleware",
    "jobsite.observability.tracing.TracingMiddleware",
    "jobsite.api.request_id.RequestIdMiddleware",
    "jobsite.api.errors.ApiErrorShapeMiddleware",
    "jobsite.api.slash.ApiTrailingSlashMiddleware",
    "audit.middleware.AuditMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
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
    # Each web or worker thread keeps one connection open for CONN_MAX_AGE seconds
    # (checked before reuse). The development server starts a thread per request, so
    # with DEBUG on connections close after each request instead of piling up.
    # DATABASE_POOL_MAX_SIZE > 0 uses psycopg's pool instead: at most that many
    # connections per process, shared by its threads (see the README's connection budget).
    _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=0)
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    if _pool_max:
        _pool_timeout = env.int("DATABASE_POOL_TIMEOUT", default=30)
        _options["pool"] = {"min_size": 1, "max_size": _pool_max, "timeout": _pool_timeout}
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0 if DEBUG else 60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # psycopg prepares a statement on the server after this many executions on a
    # connection (the job path repeats a few statements); empty turns it off, as
    # a PgBouncer in transaction mode requires.
    _prepare = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
    _options["prepare_threshold"] = int(_prepare) if _prepare else None
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

# Proxies in front of the web server. Only when there is one are its
# X-Forwarded-For (client address) and X-Forwarded-Proto (HTTPS) believed: a
# client talking to us directly could otherwise claim any address, or HTTPS.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
if NUM_PROXIES > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    # Sent only on HTTPS responses (Django never sends it over plain HTTP), so
    # it is harmless until the site is served over HTTPS, and then browsers
    # stick to HTTPS for a year. Subdomains and preloading affect other hosts
    # and are hard to undo: they are the operator's explicit choice.
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    # Scripts only from this site (no inline script, no eval): the admin, the
    # browsable API, Swagger UI (its initialising script served as a file) and
    # ReDoc need nothing more. Inline styles are allowed: the admin and ReDoc
    # set them, and they cannot run code. ReDoc's search runs in a blob: worker.
    CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {
            "default-src": ["'self'"],
            "script-src": ["'self'"],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "worker-src": ["'self'", "blob:"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    }
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
    "NUM_PROXIES": NUM_PROXIES,
}

# Lists count exactly up to this many rows; past it PostgreSQL's estimate is used.
API_COUNT_EXACT_MAX = env.int("API_COUNT_EXACT_MAX", default=10_000)

# --- Request hygiene -------------------------------------------------------------

# JSON bodies nested deeper than this (arrays/objects) are refused with 400.
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=64)

# Requests per period for each kind of caller (DRF rate syntax: N/second|minute|hour|day).
THROTTLE_RATES = {
    "anon": env.str("THROTTLE_RATE_ANON", default="60/minute"),
    # Sized for machine clients (a backend submitting hundreds of jobs a second); a key's
    # requests also count against its user's bucket. Lower them for untrusted callers.
    "user": env.str("THROTTLE_RATE_USER", default="30000/minute"),
    "key": env.str("THROTTLE_RATE_KEY", default="30000/minute"),
    "service": env.str("THROTTLE_RATE_SERVICE", default="") or None,
    "login": env.str("THROTTLE_RATE_LOGIN", default="10/minute"),
}

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# The paths the API serves: jobsite's own under /api/, and the seed services' unprefixed
# /tasks (seed 003) and /jobs (seed 004). Errors there are JSON; requests there are audited.
API_URL_REGEX = r"^/(api/|tasks(/|$)|jobs(/|$))"
CORS_URLS_REGEX = API_URL_REGEX
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
    "TOKEN_REFRESH_SERIALIZER": "accounts.api.serializers.RefreshSerializer",
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
    # Tags and operation ids are named after what follows /api/v1/ (`jobs`, `pipelines`...).
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "TAGS": [
        {"name": "jobs", "description": "Submit, follow, cancel and retry jobs."},
        {"name": "pipelines", "description": "Pipelines and stage types."},
        {"name": "auth", "description": "JWT login and refresh, API keys."},
        {"name": "audit", "description": "The audit log."},
        {
            "name": "LLM workflow service (seeds 000/001)",
            "description": "The paths and shapes of the LLM workflow service and its dashboard's LLM Queue tab: "
            "`GET /api/v1/jobs`, `GET /api/v1/status/{job_id}`, `POST /api/v1/workflow`, "
            "`POST /api/v1/workflow/validate`. Errors add the service's `detail`. README: Coming from the LLM "
            "workflow service.",
        },
        {
            "name": "Production job system (seed 002)",
            "description": "Pipelines by numeric id or name, `pipeline_id` on submission, API keys, audit log "
            "filters. README: Coming from the production job system.",
        },
        {
            "name": "Task API (seed 003)",
            "description": "`/tasks` (also under `/api/v1/tasks/`): a task is a job of an active pipeline; "
            "statuses `not_started`, `success`, `error`; duplicate payloads return the existing task. "
            "README: Coming from the task API.",
        },
        {
            "name": "Starter job API (seed 004)",
            "description": "`/jobs` with a JWT: `{job_type, job_parameters}`, the caller's jobs only. "
            "README: Coming from the starter job API.",
        },
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "StageRunStatusEnum": "jobs.models.StageRunStatus",
        "PrincipalTypeEnum": "audit.models.AuditLog.PrincipalType",
        "ScopeEnum": "accounts.scopes.SCOPES",
    },
}

# Health detail (queue depths, workers, error text) for everyone, not only operators.
HEALTH_DETAIL_PUBLIC = env.bool("HEALTH_DETAIL_PUBLIC", default=False)

# A user may hold at most this many usable (unrevoked, unexpired) API keys.
API_KEYS_PER_USER_MAX = env.int("API_KEYS_PER_USER_MAX", default=20)

# The shared secret of the trusted service principal (`X-API-Secret`); off when unset.
# `LLM_WEBHOOK_SECRET`, the variable the LLM workflow service (seeds 000/001) read
# for the same header, is used when `JOBSITE_API_SECRET` is unset or empty.
JOBSITE_API_SECRET = env.str("JOBSITE_API_SECRET", default="") or env.str("LLM_WEBHOOK_SECRET", default="")

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
# Isolated stages run in a child process whose address space is capped at this (0 = no cap).
STAGE_MEMORY_LIMIT_MB = env.int("STAGE_MEMORY_LIMIT_MB", default=2048)
# When a worker starts the fork server of isolated stages: at boot if an active pipeline has an isolated stage
# (`auto`), at boot whatever the pipelines (`always`), or when the first isolated stage runs (`never`).
ISOLATED_STAGES_PRESTART = env.str("ISOLATED_STAGES_PRESTART", default="auto").strip().lower()
if ISOLATED_STAGES_PRESTART not in ("auto", "always", "never"):
    raise ImproperlyConfigured("ISOLATED_STAGES_PRESTART must be auto, always or never.")
# Modules that register stage types (`@stage`), imported at start-up by every process.
JOBSITE_STAGE_MODULES = env.list("JOBSITE_STAGE_MODULES", default=[])
# The run path's transitions as single statements on PostgreSQL (off: the ORM form every database uses).
JOB_RUN_SINGLE_STATEMENT = env.bool("JOB_RUN_SINGLE_STATEMENT", default=True)
# After an idempotent stage, its run (the checkpoint) waits for the job's next write unless this long has passed
# since the last one; 0 writes every stage's run as it finishes (jobs.run.run_stages).
JOB_CHECKPOINT_INTERVAL_MS = env.int("JOB_CHECKPOINT_INTERVAL_MS", default=1000)
# A worker thread's database connection is checked (and recycled past CONN_MAX_AGE)
# before a message when the thread was idle this long, and after a database error.
WORKER_CONN_CHECK_IDLE_SECONDS = env.int("WORKER_CONN_CHECK_IDLE_SECONDS", default=30)
# An idle worker looks for new messages this often on brokers that cannot wake it (Redis, RabbitMQ).
WORKER_IDLE_POLL_MS = env.int("WORKER_IDLE_POLL_MS", default=50)
# On Redis, the queues that need no quick pickup (delay queues, maintenance, default) poll this often when idle.
WORKER_IDLE_POLL_SLOW_MS = env.int("WORKER_IDLE_POLL_SLOW_MS", default=500)

# --- Webhooks ------------------------------------------------------------------


def _duration(text: str) -> timedelta:
    """`5d`, `12h`, `30m` or `45s` (a number alone is seconds)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    text = text.strip()
    unit = units.get(text[-1:]) if text[-1:].isalpha() else "seconds"
    if unit is None:
        raise ImproperlyConfigured(f"Not a duration: {text!r} (use 5d, 12h, 30m or 45s).")
    try:
        return timedelta(**{unit: float(text[:-1] if text[-1:].isalpha() else text)})
    except ValueError:
        raise ImproperlyConfigured(f"Not a duration: {text!r} (use 5d, 12h, 30m or 45s).") from None


# Fernet keys (urlsafe base64, 32 bytes) that encrypt subscription secrets at rest, newest first:
# the first encrypts, all decrypt (rotation). Empty: one key derived from SECRET_KEY.
WEBHOOK_SECRET_KEYS = env.list("WEBHOOK_SECRET_KEYS", default=[])
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_READ_TIMEOUT_SECONDS = env.float("WEBHOOK_READ_TIMEOUT_SECONDS", default=10.0)
# Delay before each attempt (the first is immediate); its length is the number of attempts.
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    float(s)
    for s in env.list(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS", default=["0", "5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
# Each delay is moved by up to this fraction either way, so that failures do not come back together.
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.1)
# A subscription whose every delivery failed for this long is disabled (its owner re-enables it).
WEBHOOK_DISABLE_AFTER = _duration(env.str("WEBHOOK_DISABLE_AFTER", default="5d"))
# After a rotation, deliveries are signed with the previous secret too for this long.
WEBHOOK_SECRET_ROTATION_OVERLAP = _duration(env.str("WEBHOOK_SECRET_ROTATION_OVERLAP", default="24h"))
# How much of a receiver's answer is kept with each attempt.
WEBHOOK_RESPONSE_EXCERPT_BYTES = env.int("WEBHOOK_RESPONSE_EXCERPT_BYTES", default=1024)
# The periodic sweep (manage.py crontab): events not handed to the dispatcher within
# WEBHOOK_OUTBOX_RESEND_SECONDS, and attempts due for WEBHOOK_STUCK_SECONDS but not made, are re-sent.
WEBHOOK_SWEEP_INTERVAL_SECONDS = env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=10)
WEBHOOK_OUTBOX_RESEND_SECONDS = env.int("WEBHOOK_OUTBOX_RESEND_SECONDS", default=5)
WEBHOOK_STUCK_SECONDS = env.int("WEBHOOK_STUCK_SECONDS", default=60)
# Finished deliveries older than this are deleted by the hourly maintenance (0: kept).
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)
# Prefix of `result_url` in payloads (e.g. https://jobs.example.com); empty: a path.
WEBHOOK_PUBLIC_BASE_URL = env.str("WEBHOOK_PUBLIC_BASE_URL", default="").rstrip("/")

# --- Pipelines -----------------------------------------------------------------

# Secrets that pipeline stages reference by name (`{"$secret": "UPSTREAM_TOKEN"}`),
# from the environment variables PIPELINE_SECRET_<NAME>: the web server checks the
# names when a pipeline is written, the workers send the values. None by default.
_PIPELINE_SECRET_PREFIX = "PIPELINE_SECRET_"  # noqa: S105 (a variable name prefix)
PIPELINE_SECRETS = {
    name.removeprefix(_PIPELINE_SECRET_PREFIX): value
    for name, value in env.ENVIRON.items()
    if name.startswith(_PIPELINE_SECRET_PREFIX) and name != _PIPELINE_SECRET_PREFIX
}

# --- Dramatiq ------------------------------------------------------------------

DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default="db")
_BROKERS = {
    "db": "jobsite.broker.backend.DatabaseBroker",
    "redis": "jobsite.broker.redis.RedisBroker",
    "rediss": "jobsite.broker.redis.RedisBroker",
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
        "jobs.middleware.IdlePoll",
        "jobs.middleware.IsolatedStages",
        "jobs.middleware.DbConnections",
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
# Dead-lettered messages of the database broker are deleted after this many days
# (Redis and RabbitMQ drop theirs after 7); the hourly maintenance does it.
DB_BROKER_DEAD_LETTER_TTL_DAYS = env.int("DB_BROKER_DEAD_LETTER_TTL_DAYS", default=7)

# --- Observability -------------------------------------------------------------

# Every process (gunicorn workers, Dramatiq worker processes, the scheduler) writes
# its metrics to files in this directory, and /metrics on any web process adds up
# all of them: set it to one directory that they all share (a volume in
# docker-compose). Unset: each process counts in memory and /metrics shows the
# process that serves it (development). prometheus-client reads the variable too.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# /metrics is open to everyone when on; otherwise to operators (as the health
# detail) and to scrapers presenting one of these tokens as `Authorization: Bearer <token>`.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=False)
METRICS_TOKENS = env.list("METRICS_TOKEN", default=[])
if any(len(token) < 16 for token in METRICS_TOKENS):
    raise ImproperlyConfigured("METRICS_TOKEN: each scrape token must be at least 16 characters long.")
# /health/ready fails when outbox rows wait longer than their grace: pending jobs
# past JOB_OUTBOX_RESEND_SECONDS, or job events someone listens to and not yet
# dispatched after JOB_EVENT_DISPATCH_GRACE_SECONDS, more than this many.
READY_OUTBOX_BACKLOG_MAX = env.int("READY_OUTBOX_BACKLOG_MAX", default=100)
JOB_EVENT_DISPATCH_GRACE_SECONDS = env.int("JOB_EVENT_DISPATCH_GRACE_SECONDS", default=10)
# Traces: on when an OTLP/HTTP endpoint is set (a collector, e.g. http://otel-collector:4318);
# needs the optional packages of requirements-otel.txt. Off by default.
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="jobsite")

# --- Logging -------------------------------------------------------------------

LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# One line per event, and nothing while idle:
# - a 4xx/5xx response is logged once, by `django.request` (with the request id),
#   not again by Django's own DEBUG console handler nor by runserver's access line;
# - the scheduler's runs of its periodic jobs (recovery every few seconds, its
#   lock renewal, the crontab heartbeat) are not events; their failures still are.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "jobsite.api.request_id.RequestIdLogFilter"},
        "below_400": {
            "()": "django.utils.log.CallbackFilter",
            "callback": lambda r: getattr(r, "status_code", 0) < 400,
        },
    },
    "formatters": {
        "console": {
            "()": "jobsite.logging.ConsoleFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
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
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "filters": ["below_400"], "propagate": True},
        "apscheduler.executors": {"level": "WARNING"},
        "dramatiq_crontab.tasks.heartbeat": {"level": "WARNING"},
    },
}
