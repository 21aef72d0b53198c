"""The one ingest path every source uses: decode safely, filter, normalise, dedup, store, record.

Every sighting ends as exactly one Source row whose outcome says what happened to it.
"""
import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from crawl import pixel_budget
from crawl.fetcher import FetchError
from crawl.models import Source
from crawl.rows import (
    Item,
    Prepared,
    Sighting,  # noqa: F401  (every source builds one; they import it from here)
    source_row,
    url_hash,
    write,
)
from curation import storage
from curation.models import Image

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# Markup that must never reach storage inside an image we keep byte for byte (PNG+HTML polyglots).
MARKUP = re.compile(rb"<\s*(?:html|script|svg|body|iframe|!doctype|\?xml|head|object|embed)", re.I)
Outcome = Source.Outcome


class InvalidImage(Exception):
    """The bytes are not an image we accept; the message is the reason recorded on the Source."""


FILTER_KEYS = ("min_width", "min_height", "max_aspect")


def add_filter_arguments(parser):
    """The ingest filters as command-line flags, for every command that stores images."""
    parser.add_argument("--min-width", type=int,
                        help="narrower images are invalid; 0: no minimum (default SCENEIMG_MIN_WIDTH)")
    parser.add_argument("--min-height", type=int, help="lower images are invalid; 0: no minimum "
                                                       "(default SCENEIMG_MIN_HEIGHT)")
    parser.add_argument("--max-aspect", type=float, help="longest ratio of the longer side to the shorter; 0: no "
                                                         "limit (default SCENEIMG_MAX_ASPECT)")


def filter_params(options):
    """The filter flags that were given, as run parameters."""
    return {k: options[k] for k in FILTER_KEYS if options.get(k) is not None}


@dataclass
class Filters:
    min_width: int
    min_height: int
    max_aspect: float

    @classmethod
    def from_params(cls, params=None, debug=False):
        params = params or {}

        def given(key, default):
            return params[key] if params.get(key) is not None else default

        # 0 switches a filter off: the original crawler kept every size (its check was commented out).
        f = cls(
            min_width=int(given("min_width", settings.SCENEIMG_MIN_WIDTH)),
            min_height=int(given("min_height", settings.SCENEIMG_MIN_HEIGHT)),
            max_aspect=float(given("max_aspect", settings.SCENEIMG_MAX_ASPECT)),
        )
        if debug:  # the original scripts' --debug relaxed the size and aspect filters
            f.min_width, f.min_height = min(f.min_width, 64), min(f.min_height, 64)
            f.max_aspect = max(f.max_aspect, 10.0) if f.max_aspect > 0 else 0.0
        return f

    def reject_reason(self, width, height):
        if width < self.min_width or height < self.min_height:
            return f"too small: {width}x{height}, minimum {self.min_width}x{self.min_height}"
        aspect = max(width / height, height / width)
        if self.max_aspect > 0 and aspect > self.max_aspect:
            return f"aspect ratio {aspect:.2f} is over the maximum {self.max_aspect:g}"
        return None


@dataclass
class Normalised:
    data: bytes
    ext: str  # "jpg" or "png"
    image: PILImage.Image
    sha256: str


def known_url(url):
    return Source.objects.filter(url_hash=url_hash(url), outcome__in=[Outcome.STORED, Outcome.DUPLICATE]).exists()


def decode(data):
    """Open bytes as an image of an allowed format, fully decoded; InvalidImage with the reason if not."""
    if not data:
        raise InvalidImage("empty file (0 bytes)")
    max_pixels = settings.SCENEIMG_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = im.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise InvalidImage(f"declared size {width}x{height} is over the {max_pixels}-pixel limit")
            im.load()
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage("not an image in an allowed format (JPEG, PNG, WebP, GIF, BMP)") from None
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as exc:
        raise InvalidImage(f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, MemoryError, NotImplementedError, OverflowError, EOFError) as exc:
        raise InvalidImage(f"corrupt or truncated image: {exc}") from None
    return im


def _has_alpha(im):
    if im.mode in ("RGBA", "LA", "PA"):
        return im.getchannel("A").getextrema()[0] < 255
    return im.mode == "P" and "transparency" in im.info


def _clean_container(data, fmt):
    """True when the bytes hold one image and nothing else: safe to store as they are."""
    if MARKUP.search(data):
        return False
    if fmt == "JPEG":
        return data.rstrip(b"\0").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return data.endswith(b"IEND\xaeB`\x82")
    return False


def normalise(data, im):
    """Upright, 8-bit, PNG when there is alpha, else JPEG; the original bytes when nothing changes."""
    fmt = im.format
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
    elif fmt in ("JPEG", "PNG") and im.mode in ("RGB", "L", "RGBA", "LA") and _clean_container(data, fmt):
        if fmt == "JPEG" or _has_alpha(im):
            ext = "jpg" if fmt == "JPEG" else "png"
            return Normalised(data, ext, im, hashlib.sha256(data).hexdigest())
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = PILImage.fromarray((np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8), "L")
    if _has_alpha(im):
        im = im.convert("RGBA")
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=False)
        ext = "png"
    else:
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        buf = io.BytesIO()
        # No comment segment: Pillow would copy the sender's (markup included) into the file we store.
        im.save(buf, "JPEG", quality=settings.SCENEIMG_JPEG_QUALITY, comment=b"")
        ext = "jpg"
    out = buf.getvalue()
    return Normalised(out, ext, im, hashlib.sha256(out).hexdigest())


DHASH_SIZE = 8


def compute_dhash(im):
    """64-bit dHash as a signed integer (the form stored in Image.dhash), computed as the original
    scripts computed it, so that their thresholds mean the same distances here.

    The full decoded image, upright, in grey, resized with Lanczos to 9 x 8; bit y * 8 + x (least
    significant first) is set when pixel (x, y) is brighter than its right neighbour.
    """
    # An upright image (every stored one) needs no transposed copy: the same pixels, one copy fewer.
    upright = im if im.getexif().get(0x0112, 1) in (1, None) else ImageOps.exif_transpose(im)
    grey = upright.convert("L").resize((DHASH_SIZE + 1, DHASH_SIZE), PILImage.LANCZOS)
    px = np.asarray(grey, dtype=np.int16)
    bits = (px[:, :-1] > px[:, 1:]).ravel()
    value = sum(1 << i for i, brighter in enumerate(bits) if brighter)
    return value - (1 << 64) if value >= (1 << 63) else value


def _thumbnail_bytes(im):
    side = settings.SCENEIMG_THUMB_SIZE
    scale = min(side / im.width, side / im.height, 1.0)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    # Box-reduce to within 2x of the size first, then resample: a third of the time of resampling the
    # full image, no visible difference at thumbnail size, and no copy of the full image.
    thumb = im.resize(size, PILImage.BICUBIC, reducing_gap=1.0) if size != im.size else im
    if thumb.mode != "RGB":
        background = PILImage.new("RGB", thumb.size, (240, 240, 240))
        rgba = thumb.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        thumb = background
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=82)
    return buf.getvalue()


def _save_once(name, data):
    """Content-addressed write: the name is the content, so an existing file is already right."""
    return storage.save_once(name, data)


def store_files(norm):
    """Write the picture and its thumbnail under content-addressed names; no row yet (rows.write)."""
    sha = norm.sha256
    prefix = f"{sha[:2]}/{sha[2:4]}/{sha}"
    file_name = _save_once(f"images/{prefix}.{norm.ext}", norm.data)
    thumb_name = _save_once(f"thumbs/{prefix}.jpg", _thumbnail_bytes(norm.image))
    return Prepared(sha256=sha, file=file_name, thumbnail=thumb_name, width=norm.image.width,
                    height=norm.image.height, format="png" if norm.ext == "png" else "jpeg",
                    byte_size=len(norm.data), dhash=compute_dhash(norm.image))


def record(sighting, outcome, *, run=None, image=None, reason="", tracker=None, extra=None):
    source = source_row(sighting, outcome, run=run, image=image, reason=reason, extra=extra)
    source.save(force_insert=True)
    if tracker is not None:
        tracker.count(outcome)
    return source


def examine(data, filters=None):
    """Decode, filter and normalise without storing anything: (Normalised, None) or (None, reason)."""
    filters = filters or Filters.from_params()
    try:
        im = decode(data)
    except InvalidImage as exc:
        return None, str(exc)
    w, h = im.size
    if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
        w, h = h, w
    reason = filters.reject_reason(w, h)
    if reason:
        return None, reason
    try:
        return normalise(data, im), None
    except (OSError, ValueError) as exc:
        return None, f"could not re-encode: {exc}"


def prepare(data, filters=None):
    """Decode, filter, normalise and store the files: (Prepared, None), or (None, why it is invalid)."""
    # Decoded pixels are what costs memory: a 200 KB PNG can be 64 MP. The budget holds a decode back
    # until the pixels it declares fit, whatever the number of threads and workers in this process.
    with pixel_budget.reserve(pixel_budget.declared_pixels(data)):
        norm, reason = examine(data, filters)
        if norm is None:
            return None, reason
        return store_files(norm), None  # the thumbnail is made from the decoded pixels too


def ingest_bytes(data, sighting, *, run=None, filters=None, tracker=None, extra=None):
    """Ingest one picture: its Image row (when new) and its Source commit together."""
    prepared, reason = prepare(data, filters)
    item = Item(sighting, prepared=prepared, outcome="" if prepared else Outcome.INVALID, reason=reason or "",
                        extra=extra)
    return write([item], run=run, tracker=tracker)[0]


def ingest_url(url, sighting, *, fetcher, run=None, filters=None, tracker=None, skip_known=True,
               fallback_urls=()):
    """Fetch the first of url and fallback_urls that works, then ingest it."""
    sighting.url = sighting.url or url
    if skip_known:
        seen = (Source.objects.filter(url_hash=url_hash(url), outcome__in=[Outcome.STORED, Outcome.DUPLICATE])
                .values_list("image_id", flat=True).first())
        if seen:
            return record(sighting, Outcome.DUPLICATE, run=run, image=Image(pk=seen),
                           reason=f"URL already seen (#{seen})", tracker=tracker)
    errors = []
    for candidate in (url, *fallback_urls):
        if not candidate:
            continue
        try:
            # A cancel stops the transfer in hand, not only the next one.
            resp = fetcher.get(candidate, check=tracker.check_cancelled if tracker is not None else None)
        except FetchError as exc:
            errors.append(str(exc))
            continue
        extra = {"fetched_from": candidate, "content_type": resp.headers.get("Content-Type", "")}
        return ingest_bytes(resp.content, sighting, run=run, filters=filters, tracker=tracker, extra=extra)
    return record(sighting, Outcome.ERROR, run=run, reason="; ".join(errors) or "no URL", tracker=tracker)
