"""Rows for tests: images (with or without a real stored file), prompt versions and verdicts.

Decisions follow the product's rule unless a test sets `final_decision` itself: a person's decision
wins, else the automatic one.
"""
import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation.models import Image
from tests.images import encode, photo_like
from vlm.models import PromptVersion, VlmVerdict


def spread_dhash(n):
    """A 64-bit signed dHash drawn from n: two different n are about 32 bits apart (within 10 bits: odds
    under one in a hundred million), so never near-duplicates by accident."""
    return int.from_bytes(hashlib.sha256(f"dhash-{n}".encode()).digest()[:8], "big", signed=True)


def _decisions(fields):
    fields.setdefault("final_decision", fields.get("human_decision") or fields.get("auto_decision"))
    return fields


def image_row(n, *, width=640, height=480, dhash=None, **fields):
    """An Image row with no file behind it, for code that never opens the file (lists, filters, counts).

    n makes the row unique (sha256 is n in hex); dhash defaults to n.
    """
    return Image.objects.create(
        sha256=f"{n:064x}", file=f"images/{n}.jpg", thumbnail=f"thumbs/{n}.jpg", width=width, height=height,
        format="jpeg", byte_size=1000, dhash=n if dhash is None else dhash, **_decisions(fields),
    )


def picture_bytes(seed, width=96, height=72, fmt="JPEG", quality=85):
    """A generated picture, encoded; the same arguments always give the same bytes."""
    return encode(photo_like(width, height, seed), fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def stored_image(seed, *, width=96, height=72, fmt="JPEG", quality=85, dhash=None, **fields):
    """An Image row whose file (a generated picture) and thumbnail are in storage, as ingest leaves them:
    content-addressed names, sha256 of the stored bytes. The same picture twice is the same row.

    dhash defaults to a value far from every other seed's (see spread_dhash), so images are not
    grouped as near-duplicates unless a test gives close hashes on purpose.
    """
    data = picture_bytes(seed, width, height, fmt, quality)
    sha = hashlib.sha256(data).hexdigest()
    existing = Image.objects.filter(sha256=sha).first()
    if existing:
        return existing
    ext = "jpg" if fmt == "JPEG" else "png"
    prefix = f"{sha[:2]}/{sha[2:4]}/{sha}"
    name = default_storage.save(f"images/{prefix}.{ext}", ContentFile(data))
    thumb = default_storage.save(f"thumbs/{prefix}.jpg", ContentFile(encode(photo_like(width, height, seed))))
    return Image.objects.create(
        sha256=sha, file=name, thumbnail=thumb, width=width, height=height, format=fmt.lower(),
        byte_size=len(data), dhash=spread_dhash(seed) if dhash is None else dhash, **_decisions(fields),
    )


def stored_data(image):
    """The bytes of an image's stored file."""
    with default_storage.open(image.file.name) as fh:
        return fh.read()


def prompt_version(name="v1", **fields):
    fields.setdefault("system_text", f"system {name}")
    fields.setdefault("user_template", "judge")
    fields.setdefault("content_hash", hashlib.sha256(f"{name}|{fields['system_text']}".encode()).hexdigest())
    return PromptVersion.objects.create(name=name, **fields)


def verdict(image, pv, decision, score=None, *, backend="openai", model="m1", **fields):
    return VlmVerdict.objects.create(image=image, prompt_version=pv, backend=backend, model=model,
                                     decision=decision, score=score, **fields)

