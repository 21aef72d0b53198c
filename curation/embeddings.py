"""Stored CLIP image embeddings: every CLIP pass keeps them, so no image is encoded twice by one model.

An embedding is the normalised image feature as float16 bytes in an `Embedding` row, one per (image,
model key), where the model key names the model and its weights (`curation.clip.embedding_key`).
Any prompt set is then scored by a dot product (curation/rescore.py), and the vector index
(curation/vector_index.py) serves search and content duplicates from the same rows.
"""
import numpy as np

from curation.clip import configured_embedding_key
from curation.models import Embedding

DTYPE = np.float16
CHUNK = 2000  # ids per IN (...) list: under SQLite's variable limit, small enough for Postgres' planner


def to_bytes(vector):
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_bytes(blob):
    """A stored vector (bytes or the memoryview psycopg returns) as a float16 array."""
    return np.frombuffer(bytes(blob), dtype=DTYPE)


def current_key():
    """The model key of the configured CLIP model and weights, without building the model."""
    return configured_embedding_key()


def store(model_key, ids, vectors):
    """Keep one embedding per image under `model_key`. The first one stored stays: an image is encoded
    once per model, so every later score comes from the same numbers."""
    rows = [Embedding(image_id=int(i), model_key=model_key, vector=to_bytes(v)) for i, v in zip(ids, vectors, strict=True)]
    Embedding.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def load_map(model_key, ids):
    """{image id: float16 vector} for those of `ids` that have an embedding under `model_key`."""
    found = {}
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        rows = Embedding.objects.filter(model_key=model_key, image_id__in=ids[start:start + CHUNK])
        for image_id, blob in rows.values_list("image_id", "vector"):
            found[image_id] = from_bytes(blob)
    return found


def load_one(model_key, image_id):
    """One image's embedding (float32), or None."""
    blob = Embedding.objects.filter(model_key=model_key, image_id=image_id).values_list("vector", flat=True).first()
    return None if blob is None else from_bytes(blob).astype(np.float32)


def missing_ids(model_key, ids):
    """Those of `ids` with no embedding under `model_key`, in the order given."""
    ids = list(ids)
    have = set()
    for start in range(0, len(ids), CHUNK):
        have.update(Embedding.objects.filter(model_key=model_key, image_id__in=ids[start:start + CHUNK])
                    .values_list("image_id", flat=True))
    return [i for i in ids if i not in have]


def keys():
    """Every model key with stored embeddings."""
    return list(Embedding.objects.order_by().values_list("model_key", flat=True).distinct())
