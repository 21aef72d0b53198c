"""Shared fixtures. Tests run against the real Postgres (or SQLite) and the real Redis."""
import io
import random

import django_rq
import pytest
from PIL import Image as PILImage


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def redis_conn():
    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


def photo_like(width=640, height=480, seed=0, mode="RGB"):
    """A deterministic picture with structure (gradients and blocks), so hashes differ between seeds."""
    rng = random.Random(seed)
    im = PILImage.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2)
        draw.rectangle([x0, y0, x1, y1], fill=tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, min(width, height) // 4)
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return im.convert(mode) if mode != "RGB" else im


def encode(im, fmt="JPEG", **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def make_photo():
    return photo_like


@pytest.fixture
def jpeg_bytes():
    return lambda seed=0, w=640, h=480: encode(photo_like(w, h, seed), "JPEG", quality=90)
