"""Ranking images by CLIP similarity: a text description, or "more like this" image.

The gallery's `q=` and `like=` filters come here (curation/gallery.py). A query is one vector: the
text's CLIP embedding, or the image's stored embedding. The vector index gives the most similar
images; the gallery's other filters then keep those that match, asking the index for more
candidates until SCENEIMG_SEARCH_RESULTS of them pass (or MAX_CANDIDATES were looked at).
"""
import threading
import time
from collections import OrderedDict
from functools import lru_cache

from curation import embeddings, vector_index
from curation.clip import ModelConfigError, ModelWeightsMissing

MAX_CANDIDATES = 20000  # nearest embeddings looked at before giving up on filling a page of results
CACHE_SIZE = 64
CACHE_SECONDS = 30  # decisions change what a filter matches; a cached ranking lives this long


class SearchError(ValueError):
    """A query that cannot be answered; the message says why (shown as a filter error)."""


@lru_cache(maxsize=1)
def model_key():
    return embeddings.current_key()


@lru_cache(maxsize=256)
def _text_vector(text):
    from curation.clip import get_clip_scorer

    return get_clip_scorer().encode_texts([text])[0]


def text_vector(text):
    """The CLIP text embedding of `text` (normalised), computed once per process and text."""
    try:
        return _text_vector(" ".join(text.split())[:300])
    except (ModelWeightsMissing, ModelConfigError) as exc:
        raise SearchError(f"text search needs the CLIP model: {exc}") from None


def image_vector(image_id):
    vector = embeddings.load_one(model_key(), image_id)
    if vector is None:
        raise SearchError(f"image #{image_id} has no embedding yet (run `manage.py embed`)")
    return vector


_cache = OrderedDict()
_cache_lock = threading.Lock()


def ranked(filtered, query, want, cache_key=None):
    """[(image id, similarity)], most similar first: up to `want` images of the queryset `filtered`.

    `query` is ("text", str) or ("like", image id); "more like this" leaves the image itself out.
    Results are cached per `cache_key` (the filter) and index version, so the gallery's page, count
    and previous/next links agree and do not search again.
    """
    index = vector_index.get(model_key())
    key = (cache_key, query, want, index.state.version) if cache_key is not None else None
    if key is not None:
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                _cache.move_to_end(key)
                return cached[1]
    kind, value = query
    vector = text_vector(value) if kind == "text" else image_vector(value)
    exclude = (value,) if kind == "like" else ()
    candidates = want
    while True:
        hits = vector_index.search(vector, candidates, model_key=model_key(), exclude=exclude)
        passing = _matching(filtered, [image_id for image_id, _ in hits])
        found = [(image_id, score) for image_id, score in hits if image_id in passing]
        if len(found) >= want or len(hits) < candidates or candidates >= MAX_CANDIDATES:
            break
        candidates = min(candidates * 4, MAX_CANDIDATES)
    found = found[:want]
    if key is not None:
        with _cache_lock:
            _cache[key] = (time.monotonic(), found)
            _cache.move_to_end(key)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return found


def _matching(filtered, ids):
    passing = set()
    for start in range(0, len(ids), embeddings.CHUNK):
        passing.update(filtered.filter(pk__in=ids[start:start + embeddings.CHUNK]).values_list("pk", flat=True))
    return passing
