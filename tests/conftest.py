"""Shared fixtures. Tests run against the real Postgres (or SQLite) and the real Redis."""
import django_rq
import pytest

from tests.images import encode, photo_like


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def redis_conn():
    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def make_photo():
    return photo_like


@pytest.fixture
def jpeg_bytes():
    return lambda seed=0, w=640, h=480: encode(photo_like(w, h, seed), "JPEG", quality=90)


@pytest.fixture
def worker_env(settings):
    """Environment for a child process (rqworker, manage.py) that shares this test's database and media."""
    import os

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "sceneimg_site.test_settings",
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "REDIS_URL": settings.REDIS_URL,
        "SCENEIMG_FETCH_ALLOW_PRIVATE": ",".join(settings.SCENEIMG_FETCH_ALLOW_PRIVATE),
        "SCENEIMG_TEST_DB": "",
    })
    return env
