"""Generated photo-like pictures for tests, benchmarks and the demo (no Django needed)."""
import io
import random

from PIL import Image as PILImage
from PIL import ImageDraw


def photo_like(width=640, height=480, seed=0, mode="RGB"):
    """A deterministic picture with structure (gradients and blocks), so hashes differ between seeds."""
    rng = random.Random(seed)
    im = PILImage.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(2, max(3, width // 2)), y0 + rng.randrange(2, max(3, height // 2))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(1, max(2, min(width, height) // 4))
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return im.convert(mode) if mode != "RGB" else im


def encode(im, fmt="JPEG", **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


