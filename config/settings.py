"""Settings, all from the environment (django-environ). See README "Configuration".

Development and demos run on embedded defaults (SQLite, kombu's filesystem broker). Production sets
DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and ALLOWED_HOSTS; with DEBUG off a missing SECRET_KEY
stops start-up instead of falling back to a known value.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():  # optional, for local overrides; the environment wins
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
DATA_DIR = Path(env("RINGPOOL_DATA_DIR", default=str(BASE_DIR / "data")))

_INSECURE_DEV_KEY = "django-insecure-development-only-never-used-with-debug-off"
# No default with DEBUG off: the web app, the workers and Beat refuse to start without one
# (config.startup), and `check --deploy` fails. Commands such as makemigrations still run.
SECRET_KEY = env("SECRET_KEY", default=_INSECURE_DEV_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Fernet keys (newest first) that encrypt the carrier credentials at rest (accounts.secrets). Like
# SECRET_KEY: none in production (start-up refuses), a published one only for development.
_INSECURE_DEV_ENCRYPTION_KEY = "P_tobNCmfvFb9SGXTQJL5b7OHdK_FB1n6tzYm5wcDw8="
RINGPOOL_ENCRYPTION_KEYS = env.list(
    "RINGPOOL_ENCRYPTION_KEYS", default=[_INSECURE_DEV_ENCRYPTION_KEY] if DEBUG else []
)

INSTALLED_APPS = [
    "config.admin_site.RingPoolAdminConfig",  # django.contrib.admin with the product's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "django_celery_beat",
    "simple_history",
    "phonenumber_field",
    "axes",
    "csp",
    "accounts",
    "ringpools",
    "scaling",
]

MIDDLEWARE = [
    # Every log line of a request carries its id and pool key (config/logs.py).
    "config.logs.RequestContext",
    # Then: a Host header Django would refuse is answered in the endpoint's format, in one log line.
    "ringpools.errors.HostChecked",
    # A database that cannot answer: the designed 503, not a 500 (ringpools/errors.py).
    "ringpools.errors.ServiceUnavailable",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "ringpools.middleware.PublicEndpointsUnavailable",  # a JSON 503 for what CORS answers itself
    "ringpools.middleware.ApiPreflights",  # a preflight refused as its request would be
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "accounts.middleware.SignedInPagesPrivate",  # Cache-Control: private, no-store
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

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
                "accounts.context_processors.account_menu",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'ringpool.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Several processes (web, worker, beat) write the demo database: IMMEDIATE transactions and WAL
    # avoid "database is locked" (measured: 800/800 unique claims from 8 processes, 0 errors).
    # Tests get a file too: an in-memory database shared with the live server's threads fails with
    # "database table is locked" where a file in WAL mode waits its turn.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

PHONENUMBER_DEFAULT_REGION = "US"
PHONENUMBER_DB_FORMAT = "E164"

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("out", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
else:
    # With late acks, a task whose worker died is delivered again once this has passed since it was
    # sent: shorter than the growth pace (5 minutes), so a killed worker delays a purchase by minutes,
    # not hours; longer than any task of ours runs (a carrier task carries five orders: seconds of calls)
    # and than any countdown we set. A task delivered twice is harmless: every task is idempotent.
    # Every worker looks for such messages every 10 s (kombu's default: every 100 s, 10 s x 10).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=120),
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_IGNORE_RESULT = True
# Every task of ours may run twice (see scaling/tasks.py): acknowledge after the work, and give the
# message back when the worker process dies, so no task is lost with its worker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Carrier calls (seconds each) go to their own queue, so that Beat's passes never wait behind a
# thousand purchases; bin/demo's single worker reads both, production runs a worker pool per queue.
CELERY_TASK_ROUTES = {
    "scaling.tasks.run_carrier_orders": {"queue": "carrier"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# django-celery-beat's scheduler behind a leader lease: a second Beat stands by (scaling/jobs/beat.py).
CELERY_BEAT_SCHEDULER = "scaling.jobs.beat:LeaderScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Product --------------------------------------------------------------------------------------
# Carrier adapter used to buy and release numbers: "inventory" (demo stock in the database) or "twilio".
RINGPOOL_CARRIER = env("RINGPOOL_CARRIER", default="inventory")
# RINGPOOL_CARRIER=twilio: the platform's Twilio credentials (no default: the adapter refuses to run
# without them) and how long one carrier request may take.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
RINGPOOL_CARRIER_TIMEOUT_SECONDS = env.float("RINGPOOL_CARRIER_TIMEOUT_SECONDS", default=10.0)
# At most this many carrier calls at once across every worker (Twilio answers 429 past its account's
# concurrency limit); a carrier task finding every slot taken waits its turn. PostgreSQL only.
RINGPOOL_CARRIER_CONCURRENCY = env.int("RINGPOOL_CARRIER_CONCURRENCY", default=10)
# A process working on a carrier order holds it this long; then another may take it over (longer than
# an attempt's carrier calls take: a few calls of RINGPOOL_CARRIER_TIMEOUT_SECONDS at most).
RINGPOOL_CARRIER_CLAIM_SECONDS = env.int("RINGPOOL_CARRIER_CLAIM_SECONDS", default=120)
# The active Beat renews its lease at every tick (5 s); a standby takes over once it lapsed this long.
RINGPOOL_BEAT_LEASE_SECONDS = env.int("RINGPOOL_BEAT_LEASE_SECONDS", default=30)
# The inventory carrier answers each call after this long (benchmarks: a real carrier takes ~1 s).
RINGPOOL_INVENTORY_LATENCY_SECONDS = env.float("RINGPOOL_INVENTORY_LATENCY_SECONDS", default=0.0)
# Public base URL the carrier posts webhooks to (signatures cover the exact URL). Empty: the request's.
RINGPOOL_PUBLIC_BASE_URL = env("RINGPOOL_PUBLIC_BASE_URL", default="")
# Each web process keeps a pool's hand-out settings this long (a query saved per request); admin
# changes reach every process within it.
RINGPOOL_POOL_CACHE_SECONDS = env.int("RINGPOOL_POOL_CACHE_SECONDS", default=5)
# A call this long after a lease ended is still attributed to its last holder, marked "late".
RINGPOOL_LATE_CALL_GRACE_SECONDS = env.int("RINGPOOL_LATE_CALL_GRACE_SECONDS", default=15 * 60)
# Leases (who was shown which number, with the page and its parameters: visitor data) are deleted this
# many days after they ended; calls keep their own record. Never shorter than what the rules read back
# (ringpools/retention.py says how far: the month-end prune's 30 days).
RINGPOOL_LEASE_RETENTION_DAYS = env.int("RINGPOOL_LEASE_RETENTION_DAYS", default=90)

# --- Customer area: sign-in, password reset, sign-in throttling (issue 8) -------------------------
LOGIN_URL = "account-login"
LOGIN_REDIRECT_URL = "settings-index"
LOGOUT_REDIRECT_URL = "account-login"
# Alerts (scaling/alerts; README "Alerts"): when a condition opens an alert, and who is mailed.
# A pool at its maximum size opens an alert after this many overflows in the last hour.
RINGPOOL_ALERT_AT_CAP_OVERFLOWS = env.int("RINGPOOL_ALERT_AT_CAP_OVERFLOWS", default=1)
# Growth due but not carried out for this long past its interval.
RINGPOOL_ALERT_GROWTH_LATE_MINUTES = env.int("RINGPOOL_ALERT_GROWTH_LATE_MINUTES", default=10)
# Purchases or releases failing (pending with an error) for this long.
RINGPOOL_ALERT_CARRIER_FAILING_MINUTES = env.int("RINGPOOL_ALERT_CARRIER_FAILING_MINUTES", default=30)
# The oldest carrier order waiting this long (any reason).
RINGPOOL_ALERT_OUTBOX_MINUTES = env.int("RINGPOOL_ALERT_OUTBOX_MINUTES", default=60)
# With auto-scaling off: this share of an hour's visitors shown the overflow suggests turning it on.
RINGPOOL_ALERT_OVERFLOW_PERCENT = env.float("RINGPOOL_ALERT_OVERFLOW_PERCENT", default=5.0)
# A periodic task counts as late this long after it should have run; Beat, after this long unseen.
RINGPOOL_ALERT_JOB_MARGIN_MINUTES = env.int("RINGPOOL_ALERT_JOB_MARGIN_MINUTES", default=5)
RINGPOOL_ALERT_BEAT_SILENT_SECONDS = env.int("RINGPOOL_ALERT_BEAT_SILENT_SECONDS", default=120)
# The daily digest (for those who ask for it on the Alerts page) goes out in this hour, UTC.
RINGPOOL_ALERT_DIGEST_HOUR_UTC = env.int("RINGPOOL_ALERT_DIGEST_HOUR_UTC", default=8)
# Where the alert mails link to (the customer pages' address), e.g. https://app.example.com.
RINGPOOL_ALERT_LINK_BASE_URL = env("RINGPOOL_ALERT_LINK_BASE_URL", default="")

# Metrics (config/metrics.py): where each process writes its counts, and the token a scraper sends
# (Authorization: Bearer <token>) to read /metrics. Without a token /metrics answers 404.
RINGPOOL_METRICS_DIR = env("RINGPOOL_METRICS_DIR", default=str(DATA_DIR / "metrics"))
RINGPOOL_METRICS_TOKEN = env("RINGPOOL_METRICS_TOKEN", default="")
# prometheus_client picks its (multiprocess) value store when it is first imported: set it here.
Path(RINGPOOL_METRICS_DIR).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", RINGPOOL_METRICS_DIR)

# Password-reset mail. Development and demo: printed on the console. Production: EMAIL_URL, e.g.
# smtp+tls://user:password@smtp.example.com:587 (django-environ's email URL); without it mail is dropped
# (reset links must not end up in logs) and `check --deploy` warns.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "dummymail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="RingPool <no-reply@localhost>")
PASSWORD_RESET_TIMEOUT = 3 * 3600
# django-axes counts failed sign-ins in the database, so every web process sees the same count.
# The pair (username, client address): a guesser is stopped after AXES_FAILURE_LIMIT tries, and a
# stranger cannot lock a person out from another address.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("SIGN_IN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("SIGN_IN_LOCKOUT_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "account/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.sign_in_address"  # IPv6 per /64, like the API
AXES_VERBOSE = False
# --- Visitor API: hand-out order, hourly figures, rate limits (docs/visitor-api.md) ------------------
# A number handed out again only after resting this long, while rested numbers exist (SPEC §3.3):
# a late call from its previous visitor is then still attributed to that visitor.
RINGPOOL_HANDOUT_COOLDOWN_SECONDS = env.int(
    "RINGPOOL_HANDOUT_COOLDOWN_SECONDS", default=RINGPOOL_LATE_CALL_GRACE_SECONDS
)
# Presentations, overflows and `last_overflow_at` are counted per web process and written this often
# (a background thread; also at a clean exit). 0 writes them within each request.
RINGPOOL_FIGURES_FLUSH_SECONDS = env.float("RINGPOOL_FIGURES_FLUSH_SECONDS", default=1.0)
# Where the rate-limit counters live: a redis:// URL shares them across web processes; "local" keeps
# them per process (the demo, no Redis); "off" disables limits. Default: the broker when it is Redis.
RINGPOOL_RATE_LIMIT_URL = env(
    "RINGPOOL_RATE_LIMIT_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "local",
)
# The limits hold over any window of this length (a sliding window, ringpools/ratelimit.py).
RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = env.int("RINGPOOL_RATE_LIMIT_WINDOW_SECONDS", default=60)
# A Redis that is slow or gone: each call waits at most this long (Redis on the same network answers
# in well under a millisecond), and after a failure the process counts in its own memory for the
# cool-off before asking Redis again (a circuit breaker: the API keeps its speed).
RINGPOOL_RATE_LIMIT_REDIS_TIMEOUT_SECONDS = env.float(
    "RINGPOOL_RATE_LIMIT_REDIS_TIMEOUT_SECONDS", default=0.05
)
RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS = env.float(
    "RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS", default=30.0
)
# Per window: new visitors given a number per client address (what drains a pool), all API requests
# per client address (an office or a carrier NAT shares one), and requests per visitor id (the tag
# renews about once a minute; a runaway script does not).
RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS = env.int(
    "RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS", default=30
)
RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS = env.int("RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS", default=600)
RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = env.int("RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR", default=30)
# How many proxies in front of the app append to X-Forwarded-For: the client address is the entry
# the outermost of them appended. 0 trusts no header (REMOTE_ADDR). Behind the TLS load balancer of
# production (BEHIND_TLS_PROXY) that is one hop. Read by the API's rate limits and sign-in throttling.
RINGPOOL_TRUSTED_PROXY_HOPS = env.int(
    "RINGPOOL_TRUSTED_PROXY_HOPS",
    default=1 if not DEBUG and env.bool("BEHIND_TLS_PROXY", default=True) else 0,
)

# --- CORS: per pool, decided in ringpools.signals --------------------------------------------------
CORS_URLS_REGEX = r"^/api/v1/ringpools/.*$"
CORS_ALLOW_METHODS = ("POST", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("content-type",)
CORS_PREFLIGHT_MAX_AGE = 86400
CORS_EXPOSE_HEADERS = ("Retry-After",)  # the tag waits as long as a 503 or 429 asks

# --- Security -------------------------------------------------------------------------------------
# Content-Security-Policy (django-csp) on every page: scripts, styles, images and form posts from this
# site only, no inline script or style (the pages keep theirs in static files; charts are inline SVG,
# whose presentation attributes are not inline style), never framed. The visitor API's JSON answers
# are left out: a policy governs documents, and the hot path needs no header it would ignore. The
# demo landing page stands for a customer's own site and opts out (ringpools.views.demo_landing).
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    if env.bool("BEHIND_TLS_PROXY", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Logs (config/logs.py): LOG_FORMAT=json for one JSON object per line (log collectors); repeated
# identical warnings and errors collapsed to one line per LOG_REPEAT_SECONDS.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOG_REPEAT_SECONDS = env.int("LOG_REPEAT_SECONDS", default=60)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(pool_key)s %(outcome)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {
        "public_client_errors": {"()": "ringpools.logs.PublicClientErrors"},
        "request_fields": {"()": "config.logs.RequestFields"},
        "collapse_repeats": {"()": "config.logs.CollapseRepeats"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_fields", "collapse_repeats"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # django-axes logs every successful sign-in at INFO; failures and lockouts are warnings.
        "axes": {"level": "WARNING"},
        # A visitor API client's 4xx (bad input, 429 of a flood) is answered, not logged per request.
        "django.request": {"filters": ["public_client_errors"]},
    },
}
