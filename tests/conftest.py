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
