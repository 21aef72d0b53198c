"""SceneImg settings. Everything that differs between machines comes from the environment."""
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from sceneimg_site import queues
from sceneimg_site.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SCENEIMG_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for development)")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_htmx",
    "curation",
    "crawl",
    "vlm",
    "labels",
    "dashboard",
    "team",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sceneimg_site.middleware.UploadLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "sceneimg_site.middleware.RejectNulMiddleware",
]

ROOT_URLCONF = "sceneimg_site.urls"
WSGI_APPLICATION = "sceneimg_site.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'sceneimg.sqlite3'}"), conn_max_age=60,
        # A kept connection can die under us (database restart, failover, a pooler's idle timeout):
        # check it at the start of each request and reconnect, instead of answering 500 for a minute.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Workers and the web server write at once; wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A covering index's extra columns serve Postgres; SQLite builds the index without them, as intended.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The throttle counts failed sign-ins before the password is checked (sceneimg_site/throttle.py).
AUTHENTICATION_BACKENDS = ["sceneimg_site.throttle.ThrottledModelBackend"]
#: failed sign-ins on one account (any address) before it is locked
SCENEIMG_LOGIN_FAILURES_PER_ACCOUNT = env_int("SCENEIMG_LOGIN_FAILURES_PER_ACCOUNT", 5)
#: failed sign-ins from one client address (any account) before it is locked
SCENEIMG_LOGIN_FAILURES_PER_ADDRESS = env_int("SCENEIMG_LOGIN_FAILURES_PER_ADDRESS", 20)
#: seconds a locked account or address waits after its last failed sign-in
SCENEIMG_LOGIN_LOCKOUT_SECONDS = env_int("SCENEIMG_LOGIN_LOCKOUT_SECONDS", 15 * 60)
#: request header holding the client's address, set by your proxy (e.g. `X-Real-IP`); empty: REMOTE_ADDR
SCENEIMG_CLIENT_IP_HEADER = env_str("SCENEIMG_CLIENT_IP_HEADER", "")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Request bodies (UploadLimitMiddleware checks Content-Length before reading, then counts) ---
#: largest request body from a signed-in user, bytes (seed uploads are the largest)
SCENEIMG_MAX_REQUEST_BYTES = env_int("SCENEIMG_MAX_REQUEST_BYTES", 128 * 1024 * 1024)
#: largest request body from someone not signed in (the login form), bytes; they cannot upload files
SCENEIMG_MAX_ANONYMOUS_REQUEST_BYTES = env_int("SCENEIMG_MAX_ANONYMOUS_REQUEST_BYTES", 16 * 1024)
#: largest form without its files, bytes (a pasted URL list is up to 5 MB of text, more once encoded)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 16 * 1024 * 1024)
#: uploaded files larger than this are spooled to a temporary file instead of memory, bytes
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2621440)

# --- Security (production passes `manage.py check --deploy`) ---
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Queues: one per kind of work, each with its own timeout (seconds) ---
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUE_TIMEOUTS = {
    queues.CRAWL: env_int("SCENEIMG_TIMEOUT_CRAWL", 4 * 3600),
    queues.SCORE: env_int("SCENEIMG_TIMEOUT_SCORE", 2 * 3600),
    queues.VLM: env_int("SCENEIMG_TIMEOUT_VLM", 4 * 3600),
    queues.EXPORT: env_int("SCENEIMG_TIMEOUT_EXPORT", 4 * 3600),
    queues.DEFAULT: env_int("SCENEIMG_TIMEOUT_DEFAULT", 1800),
}
# Indexing by queues.ALL makes a queue added there without a timeout fail at startup, not in a worker.
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_QUEUE_TIMEOUTS[name]} for name in queues.ALL}
# Per-process by default; the login throttle's counts are shared by every web process through Redis.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "sceneimg-throttle",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    },
}
# A running Run whose heartbeat is older than this is taken as dead (worker killed, out of memory).
SCENEIMG_HEARTBEAT_SECONDS = env_int("SCENEIMG_HEARTBEAT_SECONDS", 10)
SCENEIMG_STALE_RUN_SECONDS = env_int("SCENEIMG_STALE_RUN_SECONDS", 120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "urllib3")},
}

# Each app keeps its own documented knobs (CVAT's default_settings pattern).
from crawl.default_settings import *  # noqa: E402,F401,F403
from curation.default_settings import *  # noqa: E402,F401,F403
from dashboard.default_settings import *  # noqa: E402,F401,F403
from team.default_settings import *  # noqa: E402,F401,F403
from vlm.default_settings import *  # noqa: E402,F401,F403

if SCENEIMG_S3_BUCKET:  # noqa: F405 (curation.default_settings)
    # Media in a private bucket (curation/s3.py reads the SCENEIMG_S3_* settings); static files stay local.
    STORAGES["default"] = {"BACKEND": "curation.s3.PrivateS3Storage"}
