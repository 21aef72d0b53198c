"""Image rows with real files for the scoring tests (written straight to storage, no ingest)."""
import hashlib
import itertools

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation.models import Image
from tests.images import encode, photo_like

_counter = itertools.count(1)


def make_image(seed=0, w=320, h=240, fmt="JPEG", dhash=None, **fields):
    data = encode(photo_like(w, h, seed), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    sha = hashlib.sha256(data).hexdigest()
    ext = "jpg" if fmt == "JPEG" else "png"
    name = default_storage.save(f"images/{sha[:2]}/{sha[2:4]}/{sha}.{ext}", ContentFile(data))
    if dhash is None:
        dhash = next(_counter) * 0x0101_0101_0101  # far apart from each other unless a test says otherwise
    return Image.objects.create(
        sha256=sha, file=name, thumbnail=name, width=w, height=h, format=fmt.lower(),
        byte_size=len(data), dhash=dhash, **fields,
    )
