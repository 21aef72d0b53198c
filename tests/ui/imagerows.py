"""Image rows with real (small, generated) files in storage, for the gallery, review and detail tests."""
import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation.models import Image
from tests.conftest import encode, photo_like


def make_image(seed, *, width=96, height=72, **fields):
    """A stored JPEG (and its thumbnail) under content-addressed names, plus its Image row."""
    data = encode(photo_like(width, height, seed=seed), "JPEG", quality=80)
    sha = hashlib.sha256(data).hexdigest()
    name = default_storage.save(f"images/{sha[:2]}/{sha[2:4]}/{sha}.jpg", ContentFile(data))
    thumb = default_storage.save(f"thumbs/{sha[:2]}/{sha[2:4]}/{sha}.jpg", ContentFile(data))
    auto = fields.pop("auto_decision", None)
    human = fields.pop("human_decision", None)
    return Image.objects.create(
        sha256=sha, file=name, thumbnail=thumb, width=width, height=height, format="jpeg",
        byte_size=len(data), dhash=seed, auto_decision=auto, human_decision=human,
        final_decision=human or auto, **fields,
    )
