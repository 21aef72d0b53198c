"""Settings for the test suite: the real settings, with test-only defaults from the environment."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("SCENEIMG_CLIP_PRETRAINED", "none")
# Tests launch folder imports and crawl outputs from the web on pytest's tmp_path folders.
os.environ.setdefault("SCENEIMG_IMPORT_ROOTS", tempfile.gettempdir())
os.environ.setdefault("SCENEIMG_OUTPUT_ROOTS", tempfile.gettempdir())

from sceneimg_site.settings import *  # noqa: E402,F401,F403
from sceneimg_site.settings import DATABASES, STATIC_ROOT, VAR_DIR  # noqa: E402

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or tempfile.mkdtemp(prefix="sceneimg-test-media-")
STORAGES = {
    # A child process of an S3 test (worker_env passes SCENEIMG_S3_*) keeps the test's bucket.
    "default": {"BACKEND": "curation.s3.PrivateS3Storage" if SCENEIMG_S3_BUCKET  # noqa: F405
                else "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Separate test databases let several test sessions share one Postgres server.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so worker processes started by tests see the same database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SCENEIMG_TEST_DB") or str(VAR_DIR / "test.sqlite3")}
elif os.environ.get("SCENEIMG_TEST_DB"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["SCENEIMG_TEST_DB"]}
SCENEIMG_HEARTBEAT_SECONDS = 1
os.makedirs(STATIC_ROOT, exist_ok=True)  # whitenoise warns on every request otherwise
