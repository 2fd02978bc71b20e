"""Base settings, read from the environment (django-environ).

With nothing configured the project runs on an embedded default: a SQLite file,
the in-process cache and Celery tasks executed inline. Setting DATABASE_URL,
REDIS_URL and CELERY_BROKER_URL switches to PostgreSQL, Redis and a real worker.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The default key is only for the embedded development mode; production.py refuses it.
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-stockroom-development-only"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # The admin's default site is backoffice.sites.StockroomAdminSite (staff start
    # page, cycle count, transfer and receive pages): see docs/STAFF_GUIDE.md.
    "backoffice.apps.StockroomAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "warehouses",
    "inventory",
    "purchasing",
    "backoffice",
]

MIDDLEWARE = [
    "inventory_site.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "inventory_site.urls"
WSGI_APPLICATION = "inventory_site.wsgi.application"
ASGI_APPLICATION = "inventory_site.asgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# PostgreSQL is the source of truth in every real deployment; SQLite is the
# embedded default for trying the app with nothing installed.
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'stockroom.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that polls the socket and asks the
    # server (`SELECT 1`) only when the connection shows trouble (issue #18).
    DATABASES["default"]["ENGINE"] = "inventory_site.postgresql"
    # A new PostgreSQL connection per request costs more than a reservation:
    # keep connections open between requests and check them before reuse.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Behind PgBouncer in transaction mode a cursor cannot outlive its transaction's
    # server connection: set DB_DISABLE_SERVER_SIDE_CURSORS=true (docs/SCALING.md).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DB_DISABLE_SERVER_SIDE_CURSORS", default=False
    )
    DATABASES["default"].setdefault("OPTIONS", {})
    # Per-connection timeouts (not server-wide): a request waiting on a hot
    # row gives up after lock_timeout instead of piling up.
    DATABASES["default"]["OPTIONS"].setdefault(
        "options",
        "-c lock_timeout={} -c statement_timeout={}".format(
            env.int("DB_LOCK_TIMEOUT_MS", default=2000),
            env.int("DB_STATEMENT_TIMEOUT_MS", default=30000),
        ),
    )
# Optional streaming replica for read-only paths (inventory_site/db_router.py):
# used while its replay lag is at most STOCKROOM_REPLICA_MAX_LAG_MS (checked at
# most every STOCKROOM_REPLICA_CHECK_SECONDS per process), else the primary.
# DATABASE_URL may name several hosts for failover (docs/SCALING.md):
# postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"].get("CONN_MAX_AGE", 0)
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
STOCKROOM_REPLICA_MAX_LAG_MS = env.int("STOCKROOM_REPLICA_MAX_LAG_MS", default=1000)
STOCKROOM_REPLICA_CHECK_SECONDS = env.float("STOCKROOM_REPLICA_CHECK_SECONDS", default=1.0)
DATABASE_ROUTERS = ["inventory_site.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# The prefix of every Redis key (the Django cache's and the availability read
# model's); CACHE_KEY_PREFIX is its older name, still read when it is not set.
STOCKROOM_AVAILABILITY_KEY_PREFIX = env.str(
    "STOCKROOM_AVAILABILITY_KEY_PREFIX", default=env.str("CACHE_KEY_PREFIX", default="stockroom")
)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": STOCKROOM_AVAILABILITY_KEY_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis is optional at run time: short timeouts, and a down
                # Redis degrades to the database instead of failing requests.
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.2),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.2),
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# No broker configured: run tasks inline so the embedded default needs nothing.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that silently drops traffic must not stall a stock operation's
# after-commit publish for long (the daily batch catches what is not queued).
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)

# --- Auth, i18n, static ---------------------------------------------------
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
STATIC_ROOT = BASE_DIR / "var" / "static"

# --- REST framework -------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stockroom API",
    "DESCRIPTION": "Inventory availability, reservations and stock operations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Stockroom domain settings --------------------------------------------
# Largest quantity a single line or operation may carry (guards against typos
# and integer overflow; documented in docs/ARCHITECTURE.md).
STOCKROOM_MAX_QUANTITY = env.int("STOCKROOM_MAX_QUANTITY", default=1_000_000)
STOCKROOM_MAX_ORDER_LINES = env.int("STOCKROOM_MAX_ORDER_LINES", default=100)
STOCKROOM_MAX_BATCH_ORDERS = env.int("STOCKROOM_MAX_BATCH_ORDERS", default=500)
# Deadlocks and serialization failures (40P01, 40001) are retried this many more
# times inside the service layer before the answer is 503 stock_busy.
STOCKROOM_BUSY_RETRIES = env.int("STOCKROOM_BUSY_RETRIES", default=3)
# "sql": on PostgreSQL a reservation (or a batch) is one statement calling
# stockroom_reserve_orders (migration inventory 0003). "python": the ORM path.
STOCKROOM_RESERVE_ENGINE = env.str("STOCKROOM_RESERVE_ENGINE", default="sql")
# Availability read model (inventory/availability_cache.py): entries are rebuilt
# from the database at least this often, which bounds staleness if a
# write-through is ever lost.
STOCKROOM_AVAILABILITY_TTL = env.int("STOCKROOM_AVAILABILITY_TTL", default=60)
STOCKROOM_AVAILABILITY_CACHE = env.bool("STOCKROOM_AVAILABILITY_CACHE", default=True)
# Hold expiry instants the availability read model keeps per row
# (inventory/availability_cache.py).
STOCKROOM_AVAILABILITY_HOLDS = env.int("STOCKROOM_AVAILABILITY_HOLDS", default=16)
# API clients are remembered per process this long after authenticating (no
# query per request); a revocation reaches other processes within it.
STOCKROOM_API_CLIENT_CACHE_SECONDS = env.int("STOCKROOM_API_CLIENT_CACHE_SECONDS", default=10)
# Refuse reservations whose every line is sold out in the committed cached
# state without touching the database (flash sales). The database still decides
# everything else.
STOCKROOM_SOLD_OUT_GATE = env.bool("STOCKROOM_SOLD_OUT_GATE", default=True)
# Serving processes freeze the loaded app out of the garbage collector's sight
# (inventory_site/serving.py): full collections no longer traverse it.
STOCKROOM_GC_FREEZE = env.bool("STOCKROOM_GC_FREEZE", default=True)
# Opt-in: a reservation's write-through to the read model waits at most this
# long for other commits of the same process, to go with them in one Redis call
# (inventory/write_behind.py). 0 (the default) writes each at its commit: on an
# oversubscribed 2-core box it did not measurably help (docs/PERFORMANCE.md).
STOCKROOM_WRITE_BEHIND_MS = env.float("STOCKROOM_WRITE_BEHIND_MS", default=0.0)

# LOG_FORMAT=json gives one JSON object per line (production); every record
# carries the request id (inventory_site/request_id.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "inventory_site.request_id.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "inventory_site.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain"),
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Each line once: Django's default config gives "django" its own console handler
    # and lets it propagate to the root as well (every django.request warning was
    # printed twice). Django's records go only through the root's handler; the
    # runserver access log ("django.server") keeps its own, unpropagated one.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}
if not CELERY_BROKER_URL:
    # No broker: tasks run inline, but Celery still builds a (never connected) kombu
    # producer to serialise their arguments, and kombu warns "No hostname was
    # supplied. Reverting to default 'localhost'" on every task. Nothing dials a
    # broker; keep kombu's connection warnings out of the embedded default. (Not a
    # broker URL override: tests and tools that set one at run time must reach it.)
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}


# --- Storefront and operations API (api app) -------------------------------
INSTALLED_APPS += ["api", "drf_spectacular_sidecar"]
REST_FRAMEWORK.update(
    {
        "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ClientTokenAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "EXCEPTION_HANDLER": "api.exceptions.api_exception_handler",
    }
)
SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": (
            "Inventory availability, order reservations with warehouse routing, stock "
            "operations and catalogue sync. Every error is "
            '{"error": {"code", "message", "details"}}; see docs/API.md.'
        ),
        "COMPONENT_SPLIT_REQUEST": True,
        # One schema name for the event types, wherever a field lists them.
        "ENUM_NAME_OVERRIDES": {"EventTypeEnum": "events.models.EventType"},
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "SERVE_AUTHENTICATION": [],
        # /api/docs/ serves Swagger UI from this app's static files, not a CDN.
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
    }
)
# Requests per client token ("N/second|minute|hour|day").
STOCKROOM_API_THROTTLE_RATE = env.str("STOCKROOM_API_THROTTLE_RATE", default="1200/min")
STOCKROOM_MAX_AVAILABILITY_SKUS = env.int("STOCKROOM_MAX_AVAILABILITY_SKUS", default=100)
STOCKROOM_MAX_BULK_PRODUCTS = env.int("STOCKROOM_MAX_BULK_PRODUCTS", default=1000)
# Available units at or below which a SKU is low_stock when it has no reorder threshold.
STOCKROOM_LOW_STOCK_UNITS = env.int("STOCKROOM_LOW_STOCK_UNITS", default=5)
# The staff start page lists ADJUSTs that changed on hand by at least this many units.
BACKOFFICE_LARGE_ADJUSTMENT_UNITS = env.int("BACKOFFICE_LARGE_ADJUSTMENT_UNITS", default=10)
# An Idempotency-Key still "running" after this long (its process died) may be taken over.
STOCKROOM_IDEMPOTENCY_STALE_SECONDS = env.int("STOCKROOM_IDEMPOTENCY_STALE_SECONDS", default=60)
# Admin login: failed attempts per username (x4 per address) before a lockout window.
STOCKROOM_ADMIN_LOGIN_MAX_FAILURES = env.int("STOCKROOM_ADMIN_LOGIN_MAX_FAILURES", default=5)
STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS = env.int(
    "STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS", default=900
)
# Peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client for the
# admin login lockout; default none: REMOTE_ADDR (backoffice/login_throttle.py).
STOCKROOM_TRUSTED_PROXIES = env.list("STOCKROOM_TRUSTED_PROXIES", default=[])
# Finished Idempotency-Key records are purged (api.tasks, daily on beat) after this long.
STOCKROOM_IDEMPOTENCY_RETENTION_HOURS = env.int(
    "STOCKROOM_IDEMPOTENCY_RETENTION_HOURS", default=7 * 24
)


# --- Stock events and webhooks (events app, issue 14; docs/EVENTS.md) -------
INSTALLED_APPS += ["events"]
# Events older than this are pruned (daily, events.tasks.events_prune); a cursor
# before the pruned part answers 410 cursor_expired.
STOCKROOM_EVENTS_RETENTION_DAYS = env.int("STOCKROOM_EVENTS_RETENTION_DAYS", default=7)
# Longest long-poll of GET /api/v1/events/?wait= (seconds).
STOCKROOM_EVENTS_MAX_WAIT = env.int("STOCKROOM_EVENTS_MAX_WAIT", default=20)
# Webhook delivery: HTTP timeout per attempt, give up on one event after this long
# (exponential backoff with jitter in between), disable a subscription after this
# many consecutive failed attempts.
STOCKROOM_WEBHOOK_TIMEOUT = env.float("STOCKROOM_WEBHOOK_TIMEOUT", default=5.0)
STOCKROOM_WEBHOOK_MAX_AGE_HOURS = env.int("STOCKROOM_WEBHOOK_MAX_AGE_HOURS", default=24)
STOCKROOM_WEBHOOK_DISABLE_AFTER = env.int("STOCKROOM_WEBHOOK_DISABLE_AFTER", default=50)
# Events one delivery task sends on one lane before handing the worker back.
STOCKROOM_WEBHOOK_LANE_BATCH = env.int("STOCKROOM_WEBHOOK_LANE_BATCH", default=100)


# --- The ledger at scale: checkpoints, pg_partman (issue 21; docs/SCALING_LEDGER.md)
# A balance checkpoint's position lags this far behind now (and behind the oldest
# open transaction), so no ledger row can still commit below it.
STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS = env.int(
    "STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS", default=300
)
# Set once `manage.py partition_ledger` has converted the ledger: beat then runs
# pg_partman's maintenance (partitions created ahead, retention) every hour.
STOCKROOM_LEDGER_PARTITIONED = env.bool("STOCKROOM_LEDGER_PARTITIONED", default=False)
# pg_partman's settings for the ledger, applied at conversion and by every
# maintenance run: partition width, partitions made ahead, and retention ("" =
# keep everything; e.g. "400 days": older partitions are DETACHED, never dropped,
# for archive_ledger_partitions to write to files).
STOCKROOM_LEDGER_PARTITION_INTERVAL = env.str(
    "STOCKROOM_LEDGER_PARTITION_INTERVAL", default="1 day"
)
STOCKROOM_LEDGER_PREMAKE = env.int("STOCKROOM_LEDGER_PREMAKE", default=7)
STOCKROOM_LEDGER_RETENTION = env.str("STOCKROOM_LEDGER_RETENTION", default="")
CELERY_BEAT_SCHEDULE = {
    "ledger-checkpoint": {
        "task": "inventory.tasks.ledger_checkpoint_task",
        "schedule": 24 * 3600,
    },
}
if STOCKROOM_LEDGER_PARTITIONED:
    CELERY_BEAT_SCHEDULE["ledger-partition-maintenance"] = {
        "task": "inventory.tasks.ledger_partition_maintenance_task",
        "schedule": 3600,
    }
