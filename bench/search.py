"""Text search and "more like this" over N stored 512-d embeddings: latency and recall against exact search.

Builds the product's vector index (curation.vector_index: float16 segments and, from
SCENEIMG_INDEX_EXACT_BELOW on, the faiss IVF index that `sync` builds) over N synthetic embeddings in a
scratch folder, then times `vector_index.search` one query at a time, as the gallery asks, and compares
each top 10 with exact search (a float32 matrix product over every vector).

The embeddings imitate CLIP's: a component every image shares (random images have cosine about 0.5),
one of 100 broad themes, one of 10,000 narrower ones inside them, and per-image variation. "More like this" queries are stored embeddings (the image
itself left out, as the gallery does). Text queries sit across a modality gap: a direction no image
has plus a theme and noise, so they are far from every image (cosine about 0.3), like real text
embeddings. Uniform random vectors would be harder than real embeddings for any index; clustered
ones are what CLIP gives.

    .venv/bin/python bench/search.py --n 100000            # quick
    .venv/bin/python bench/search.py --n 1000000           # the target size

Targets (2 cores): p95 <= 50 ms per query and recall@10 >= 0.95 against exact search, at 1,000,000.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_P95_MS = 50.0
TARGET_RECALL = 0.95
KEY = "bench:synthetic"
DIM = 512


def setup_django(vector_dir):
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SCENEIMG_VECTOR_DIR"] = str(vector_dir)
    import django

    django.setup()


def embeddings_like_clip(n, seed=0, topics=100, subtopics=100, spread=0.45):
    """Unit vectors with CLIP's shape: a shared component, one of `topics` broad themes, one of
    `subtopics` narrower ones inside it (10,000 in all), and per-image variation."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    common /= np.linalg.norm(common)
    broad = rng.normal(size=(topics, DIM)) / np.sqrt(DIM)
    narrow = rng.normal(size=(topics * subtopics, DIM)) / np.sqrt(DIM)
    out = np.empty((n, DIM), dtype=np.float16)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        sub = rng.integers(0, topics * subtopics, m)
        x = (common + 0.8 * broad[sub // subtopics] + 0.5 * narrow[sub] + spread * rng.normal(size=(m, DIM)) / np.sqrt(DIM))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, 0.8 * broad[np.arange(topics * subtopics) // subtopics] + 0.5 * narrow


def text_queries(count, centres, seed=1):
    rng = np.random.default_rng(seed)
    gap = rng.normal(size=DIM)
    gap /= np.linalg.norm(gap)
    x = 1.5 * gap + centres[rng.integers(0, len(centres), count)] + 0.5 * rng.normal(size=(count, DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build(ids, vectors):
    """The index files as `vector_index.sync` writes them, from vectors already in hand."""
    from curation import vector_index as vi

    folder = vi.key_dir(KEY)
    folder.mkdir(parents=True, exist_ok=True)
    state = vi.State(segments=[1], count=len(ids), dim=DIM, max_row_id=len(ids))
    ids_path, vec_path = vi._segment_paths(folder, 1)
    vi._save_npy(ids_path, ids)
    vi._save_npy(vec_path, vectors)
    t0 = time.perf_counter()
    vi._update_index(folder, KEY, state, ids, vectors)
    state.version = 1
    state.write(folder)
    return time.perf_counter() - t0


def exact_top(matrix, ids, queries, k, exclude=None):
    sims = queries @ matrix.T
    if exclude is not None:
        sims[np.arange(len(queries)), exclude] = -np.inf
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    return [set(ids[row].tolist()) for row in top]


def truth_for(queries, matrix, ids, k, exclude_rows=None):
    truth = []
    for start in range(0, len(queries), 50):
        rows = None if exclude_rows is None else exclude_rows[start:start + 50]
        truth += exact_top(matrix, ids, queries[start:start + 50], k, rows)
    return truth


def measure(label, queries, truth, ids, k, exclude_rows=None):
    from curation import vector_index as vi

    vi.search(queries[0], k, model_key=KEY)  # loads the index once, as a web process does
    times, found = [], []
    for n, q in enumerate(queries):
        skip = (int(ids[exclude_rows[n]]),) if exclude_rows is not None else ()
        t0 = time.perf_counter()
        hits = vi.search(q, k, model_key=KEY, exclude=skip)
        times.append((time.perf_counter() - t0) * 1000)
        found.append({i for i, _ in hits})
    recall = float(np.mean([len(f & t) / k for f, t in zip(found, truth, strict=True)]))
    p50, p95 = np.percentile(times, [50, 95])
    print(f"{label:16s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms (target {TARGET_P95_MS:.0f}: ratio "
          f"{TARGET_P95_MS / p95:.2f})  recall@{k} {recall:.3f} (target {TARGET_RECALL}: ratio {recall / TARGET_RECALL:.2f})")
    return p95, recall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--spread", type=float, default=0.45,
                        help="per-image variation; larger makes neighbours looser and the index's job harder")
    parser.add_argument("--subtopics", type=int, default=100,
                        help="narrow themes per broad theme; 10000 gives nearly every image its own (the hardest case)")
    parser.add_argument("--nprobe", default="", help="comma-separated IVF probes to try (default SCENEIMG_INDEX_NPROBE)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        setup_django(tmp)
        from django.conf import settings

        probes = [int(p) for p in args.nprobe.split(",") if p] or [settings.SCENEIMG_INDEX_NPROBE]
        import faiss

        print(f"{args.n:,} embeddings, {DIM}-d; faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; "
              f"nprobe {', '.join(map(str, probes))}")
        vectors, centres = embeddings_like_clip(args.n, subtopics=args.subtopics, spread=args.spread)
        ids = np.arange(1, args.n + 1, dtype=np.int64)
        seconds = build(ids, vectors)
        kind = "exact" if args.n < settings.SCENEIMG_INDEX_EXACT_BELOW else "IVF"
        print(f"index build ({kind}): {seconds:.1f} s")
        matrix = vectors.astype(np.float32)
        rng = np.random.default_rng(2)
        rows = rng.choice(args.n, size=args.queries, replace=False)
        texts = text_queries(args.queries, centres)
        images = matrix[rows]
        image_truth = truth_for(images, matrix, ids, 10, rows)
        text_truth = truth_for(texts, matrix, ids, 10)
        print(f"nearest-neighbour cosine: median {np.median(np.max(images @ matrix[:20000].T, axis=1)):.2f} "
              f"(image queries, among 20,000), text queries' best {np.median(np.max(texts @ matrix.T, axis=1)):.2f}")
        for nprobe in probes:
            settings.SCENEIMG_INDEX_NPROBE = nprobe
            print(f"nprobe {nprobe}:" if len(probes) > 1 else "", end="\n" if len(probes) > 1 else "")
            measure("more like this", images, image_truth, ids, 10, exclude_rows=rows)
            measure("text search", texts, text_truth, ids, 10)


if __name__ == "__main__":
    main()
