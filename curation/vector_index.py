"""The vector index over stored embeddings: text search, "more like this" and content duplicates.

The `Embedding` rows are the truth; this is a copy laid out for speed, in files under
SCENEIMG_VECTOR_DIR/<model key>/ so it survives restarts and every process reads the same one:

- segments (`seg-N.ids.npy`, `seg-N.vec.npy`): image ids and float16 vectors, appended by each sync.
  Rescoring and the learned scorer read every embedding from here, not from the database.
- `index-V.faiss`: from SCENEIMG_INDEX_EXACT_BELOW embeddings on, a faiss IVF index (inner product,
  vectors kept as float16) answers queries; below that, search is an exact matrix product.
- `state.json`: which files are current. It is replaced atomically, so a reader never sees half a sync.

`sync(model_key)` (the index job, after every CLIP and embed run) appends the embeddings stored since
the last sync, extends the IVF index (retraining it when the collection has doubled since it was
trained), and records the new ones' content duplicates.
"""
import fcntl
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from curation import embeddings, runs
from curation.models import ContentDuplicate, Embedding, Image, Run

log = logging.getLogger(__name__)

KIND = Run.Kind.INDEX  # the Run kind of a sync

READ_CHUNK = 10000  # embedding rows per database read
# Postgres rows can become visible out of id order: each sync looks this many ids back, so a row
# committed late is still indexed (once: ids already indexed are skipped).
RECHECK_IDS = 1000
MAX_SEGMENTS = 32  # more than this are merged into one
MAX_DUPLICATES = 20  # content duplicates kept per image, most similar first
TRAIN_PER_LIST = 40  # training vectors per IVF list


def vector_dir():
    return Path(settings.SCENEIMG_VECTOR_DIR or Path(settings.VAR_DIR) / "vectors")


def key_dir(model_key):
    return vector_dir() / re.sub(r"[^A-Za-z0-9_.-]+", "_", model_key)


def ivf_lists(n):
    """IVF lists for n vectors: about 1,000 vectors a list, between 64 and 4,096 lists."""
    return int(min(4096, max(64, 2 ** round(np.log2(max(n, 1) / 1000)))))


# --- state on disk --------------------------------------------------------------------------------

@dataclass
class State:
    segments: list = field(default_factory=list)  # segment numbers, in order
    count: int = 0
    dim: int = 0
    max_row_id: int = 0  # the highest Embedding.id read so far
    version: int = 0  # bumped by every sync that changed something
    index_file: str = ""  # "" while search is exact
    trained_count: int = 0  # vectors when the IVF index was last trained

    @classmethod
    def read(cls, folder):
        try:
            return cls(**json.loads((folder / "state.json").read_text()))
        except FileNotFoundError:
            return cls()

    def write(self, folder):
        tmp = folder / "state.json.tmp"
        tmp.write_text(json.dumps(self.__dict__))
        os.replace(tmp, folder / "state.json")


def _segment_paths(folder, number):
    return folder / f"seg-{number:06d}.ids.npy", folder / f"seg-{number:06d}.vec.npy"


def _save_npy(path, array):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def iter_segments(model_key, state=None):
    """(image ids int64, vectors float16 [n, dim]) per segment, memory-mapped: every synced embedding."""
    folder = key_dir(model_key)
    state = state or State.read(folder)
    for number in state.segments:
        ids_path, vec_path = _segment_paths(folder, number)
        yield np.load(ids_path), np.load(vec_path, mmap_mode="r")


def all_ids(model_key, state=None):
    parts = [ids for ids, _ in iter_segments(model_key, state)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@contextmanager
def _writer_lock(folder):
    """One sync at a time per model key, across processes and machines sharing the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sync.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- building -------------------------------------------------------------------------------------

def sync(model_key=None, *, tracker=None, rebuild=False):
    """Bring the index of `model_key` up to date with the Embedding rows; returns counts.

    With `rebuild`, start from nothing (after a change of settings, or if the files were lost).
    """
    model_key = model_key or embeddings.current_key()
    folder = key_dir(model_key)
    with _writer_lock(folder):
        state = State() if rebuild else State.read(folder)
        if rebuild:
            # The pairs are found again below, under the threshold in force now.
            ContentDuplicate.objects.filter(model_key=model_key).delete()
        known = set(all_ids(model_key, state).tolist())
        new_ids, new_vecs, max_row = _read_new(model_key, state, known)
        stats = {"indexed": len(new_ids), "total": state.count + len(new_ids), "duplicates": 0}
        if not new_ids:
            return stats
        ids = np.asarray(new_ids, dtype=np.int64)
        vecs = np.stack(new_vecs).astype(np.float16)
        number = (state.segments[-1] + 1) if state.segments else 1
        ids_path, vec_path = _segment_paths(folder, number)
        _save_npy(ids_path, ids)
        _save_npy(vec_path, vecs)
        state.segments.append(number)
        state.count += len(ids)
        state.dim = vecs.shape[1]
        state.max_row_id = max(state.max_row_id, max_row)
        if len(state.segments) > MAX_SEGMENTS:
            _merge_segments(folder, state)
        _update_index(folder, model_key, state, ids, vecs)
        state.version += 1
        state.write(folder)
        _drop_unused_files(folder, state)
        if tracker is not None:
            tracker.count("indexed", len(ids))
        stats["duplicates"] = record_content_duplicates(model_key, ids, vecs)
    return stats


def sync_after(run, user=None):
    """The index run that follows a foreground CLIP or embed run: what a worker launches after the
    last batch of an enqueued one, done here and recorded the same way. Returns the index Run."""
    params = {"model_key": embeddings.current_key(), "rebuild": False}
    return runs.run_in_foreground(KIND, lambda t: sync(params["model_key"], tracker=t), params,
                                  label=f"index after run #{run.pk}", user=user)


def _read_new(model_key, state, known):
    rows = Embedding.objects.filter(model_key=model_key, id__gt=max(0, state.max_row_id - RECHECK_IDS))
    new_ids, new_vecs, max_row, last = [], [], state.max_row_id, 0
    while True:
        chunk = list(rows.filter(id__gt=last).order_by("id").values_list("id", "image_id", "vector")[:READ_CHUNK])
        if not chunk:
            break
        for _row_id, image_id, blob in chunk:
            if image_id not in known:
                known.add(image_id)
                new_ids.append(image_id)
                new_vecs.append(embeddings.from_bytes(blob))
        last = chunk[-1][0]
        max_row = max(max_row, last)
    return new_ids, new_vecs, max_row


def _merge_segments(folder, state):
    ids = np.concatenate([np.load(_segment_paths(folder, n)[0]) for n in state.segments])
    vecs = np.concatenate([np.load(_segment_paths(folder, n)[1]) for n in state.segments])
    number = state.segments[-1] + 1
    ids_path, vec_path = _segment_paths(folder, number)
    _save_npy(ids_path, ids)
    _save_npy(vec_path, vecs)
    state.segments = [number]


def _update_index(folder, model_key, state, new_ids, new_vecs):
    import faiss

    if state.count < settings.SCENEIMG_INDEX_EXACT_BELOW:
        state.index_file, state.trained_count = "", 0
        return
    if state.index_file and state.count < 2 * state.trained_count:
        index = faiss.read_index(str(folder / state.index_file))
        index.add_with_ids(new_vecs.astype(np.float32), new_ids)
    else:
        index = _train(model_key, state)
        state.trained_count = state.count
    name = f"index-{state.version + 1:06d}.faiss"
    faiss.write_index(index, str(folder / (name + ".tmp")))
    os.replace(folder / (name + ".tmp"), folder / name)
    state.index_file = name


def _train(model_key, state):
    """A new IVF index over every synced vector: spherical k-means lists, vectors stored as float16."""
    import faiss

    nlist = ivf_lists(state.count)
    quantizer = faiss.IndexFlatIP(state.dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, state.dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True
    rng = np.random.default_rng(0)
    want = min(state.count, nlist * TRAIN_PER_LIST)
    sample = []
    for ids, vecs in iter_segments(model_key, state):
        take = max(1, round(len(ids) * want / state.count))
        rows = np.sort(rng.choice(len(ids), size=min(take, len(ids)), replace=False))
        sample.append(np.asarray(vecs[rows], dtype=np.float32))
    index.train(np.concatenate(sample))
    for ids, vecs in iter_segments(model_key, state):
        for start in range(0, len(ids), 100000):
            index.add_with_ids(np.asarray(vecs[start:start + 100000], dtype=np.float32), ids[start:start + 100000])
    return index


def _drop_unused_files(folder, state):
    """Old index files and merged segments. A reader that opened one before keeps its open copy."""
    current = {state.index_file} | {p.name for n in state.segments for p in _segment_paths(folder, n)}
    for path in list(folder.glob("index-*.faiss")) + list(folder.glob("seg-*.npy")):
        if path.name not in current:
            path.unlink(missing_ok=True)


# --- reading --------------------------------------------------------------------------------------

class LoadedIndex:
    """One process's view of the files: exact search (a float32 matrix) or the faiss index."""

    def __init__(self, model_key):
        import faiss

        folder = key_dir(model_key)
        self.state = State.read(folder)
        self.faiss = None
        self.ids = np.zeros(0, dtype=np.int64)
        self.matrix = None
        if self.state.index_file:
            # Memory-mapped: every web process and worker shares one copy in the page cache.
            self.faiss = faiss.read_index(str(folder / self.state.index_file), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        elif self.state.segments:
            parts = list(iter_segments(model_key, self.state))
            self.ids = np.concatenate([ids for ids, _ in parts])
            self.matrix = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in parts])

    def __len__(self):
        return self.state.count

    def search(self, queries, k):
        """(scores, ids) [m, k'] of the k most similar embeddings to each query, best first; k' <= k."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.faiss is not None:
            import faiss

            params = faiss.SearchParametersIVF(nprobe=min(settings.SCENEIMG_INDEX_NPROBE, self.faiss.nlist))
            scores, ids = self.faiss.search(queries, k, params=params)
            return scores, ids
        sims = queries @ self.matrix.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows = np.arange(len(queries))[:, None]
        order = np.argsort(-sims[rows, top], axis=1, kind="stable")
        top = top[rows, order]
        return sims[rows, top], self.ids[top]

    def above(self, queries, threshold, limit):
        """[(ids, scores)] per query: up to `limit` embeddings with similarity >= threshold, best first."""
        scores, ids = self.search(queries, limit)
        out = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            keep = (row_ids >= 0) & (row_scores >= threshold)
            out.append((row_ids[keep], row_scores[keep]))
        return out


_loaded = {}
_loaded_lock = threading.Lock()


def get(model_key=None):
    """The index for `model_key`, loaded once per process and reloaded when a sync has changed it."""
    model_key = model_key or embeddings.current_key()
    version = State.read(key_dir(model_key)).version
    with _loaded_lock:
        current = _loaded.get(model_key)
        if current is None or current.state.version != version:
            current = _loaded[model_key] = LoadedIndex(model_key)
        return current


def search(vector, k, *, model_key=None, exclude=()):
    """[(image id, similarity)] of the k stored embeddings most similar to `vector`, best first."""
    index = get(model_key)
    scores, ids = index.search(vector, k + len(exclude))
    skip = set(exclude)
    hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0 and int(i) not in skip]
    return hits[:k]


def is_stale(model_key=None):
    """Whether embeddings were stored after the last sync (the index job should run)."""
    model_key = model_key or embeddings.current_key()
    state = State.read(key_dir(model_key))
    return Embedding.objects.filter(model_key=model_key, id__gt=state.max_row_id).exists()


_last_stale_check = {}


def stale_check_due(model_key, every=60.0):
    """True at most once a minute per process and key: the web asks the index job to catch up."""
    now = time.monotonic()
    if now - _last_stale_check.get(model_key, -every) < every:
        return False
    _last_stale_check[model_key] = now
    return True


# --- content duplicates ---------------------------------------------------------------------------

def record_content_duplicates(model_key, ids, vecs, *, threshold=None):
    """Store the pairs (both directions) between `ids` and any indexed image at cosine >= threshold."""
    threshold = settings.SCENEIMG_CONTENT_DUP_THRESHOLD if threshold is None else threshold
    index = LoadedIndex(model_key)
    pairs = {}  # (smaller id, larger id) -> similarity
    for start in range(0, len(ids), 1000):
        found = index.above(np.asarray(vecs[start:start + 1000], dtype=np.float32), threshold, MAX_DUPLICATES + 1)
        for image_id, (others, scores) in zip(ids[start:start + 1000], found, strict=True):
            for other, score in zip(others, scores, strict=True):
                if other != image_id:
                    pairs[(min(int(image_id), int(other)), max(int(image_id), int(other)))] = float(min(score, 1.0))
    # The files may still hold images deleted since; their embeddings (and so their pairs) went with them.
    alive = set()
    involved = sorted({i for pair in pairs for i in pair})
    for start in range(0, len(involved), embeddings.CHUNK):
        alive.update(Image.objects.filter(id__in=involved[start:start + embeddings.CHUNK]).values_list("id", flat=True))
    rows = []
    for (a, b), score in pairs.items():
        if a in alive and b in alive:
            rows.append(ContentDuplicate(image_id=a, other_id=b, model_key=model_key, similarity=score))
            rows.append(ContentDuplicate(image_id=b, other_id=a, model_key=model_key, similarity=score))
    with transaction.atomic():
        ContentDuplicate.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
    return len(rows) // 2  # pairs, some of which may have been known already
