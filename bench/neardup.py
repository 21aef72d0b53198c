"""Near-duplicate search: curation.neardup (multi-index hashing) against imagededup's own search.

N random 64-bit hashes with planted near-duplicates (10% of rows copied from another with 0..k+2
bits flipped). Times, at equal sizes, our grouping (search + connected components) and imagededup's
`find_duplicates(encoding_map=..., max_distance_threshold=k)` (brute_force_cython, its Unix
default, one worker per core), checks both find the same pairs, then times ours alone up to 1M.

    .venv/bin/python bench/neardup.py                       # k=4; imagededup at 10,200; ours up to 1M
    .venv/bin/python bench/neardup.py --imagededup-sizes 10200,20400 --sizes 100000,1000000

Targets: 1,000,000 hashes at k=4 grouped in under 60 s on 2 cores; at least 20x faster than
imagededup's search at equal size. Anchor (performance-anchors.md section 8): imagededup takes
10.7 s for 10,200 hashes and 214 s for 40,800.

Without imagededup installed the equal-size comparison runs against numpy brute force instead, to
check the pairs; that time is not imagededup's, so no ratio to the 20x target is printed for it.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_1M_SECONDS = 60.0
TARGET_SPEEDUP = 20.0
ANCHOR_IMAGEDEDUP = {10_200: 10.7, 40_800: 214.0}


def setup_django(database_url=None):
    """curation.neardup lives beside the models; the search itself never touches the database."""
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def db_run(n, k):
    """find_duplicates end to end over n Image rows (load, search, write groups and decisions)."""
    from django.core.management import call_command

    from curation.models import Image
    from curation.neardup import assign_near_duplicates, find_duplicates

    call_command("migrate", verbosity=0)
    if Image.objects.count() != n:
        Image.objects.all().delete()
        h = planted(n, k, seed=2).view(np.int64)
        t0 = time.perf_counter()
        for start in range(0, n, 20000):
            Image.objects.bulk_create([
                Image(sha256=f"{i:064x}", file=f"images/{i}.jpg", thumbnail=f"thumbs/{i}.jpg", width=640 + i % 7,
                      height=480, format="jpeg", byte_size=1, dhash=int(h[i]))
                for i in range(start, min(n, start + 20000))
            ])
        print(f"seeded {n:,} Image rows in {time.perf_counter() - t0:.1f} s")
    Image.objects.update(dup_group=None, auto_decision=None, auto_reason="", final_decision=None)
    t0 = time.perf_counter()
    stats = find_duplicates(threshold=k)
    t1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = find_duplicates(threshold=k)
    t2 = time.perf_counter() - t0
    print(f"find_duplicates over {n:,} rows: {t1:.1f} s first ({stats['groups']:,} groups, {stats['rejected']:,} "
          f"rejected), {t2:.1f} s again (nothing to change: {again['rejected']} rejected)")
    last = list(Image.objects.order_by("-id").values_list("id", flat=True)[:20])
    t0 = time.perf_counter()
    for pk in last:
        assign_near_duplicates([pk], threshold=k)
    print(f"assign_near_duplicates: {(time.perf_counter() - t0) / len(last) * 1000:.1f} ms per image "
          f"(the first call loads the hash index)")


def planted(n, k, seed=0, frac=0.10, min_bits=0):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    m = int(n * frac)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    flips = np.zeros(m, dtype=np.uint64)
    nbits = rng.integers(min_bits, k + 3, m)
    for r in range(1, k + 3):
        rows = np.flatnonzero(nbits >= r)
        flips[rows] |= np.uint64(1) << rng.integers(0, 64, len(rows)).astype(np.uint64)
    h[dst] = h[src] ^ flips
    return h


def ours(h, k):
    from curation import neardup

    t0 = time.perf_counter()
    i, j = neardup.near_pairs(h, k)
    labels = neardup.components(len(h), i, j)
    return time.perf_counter() - t0, labels, (i, j)


def imagededup_search(h, k):
    from imagededup.methods import DHash

    encoding_map = {str(n): f"{int(v):016x}" for n, v in enumerate(h)}
    t0 = time.perf_counter()
    dups = DHash(verbose=False).find_duplicates(
        encoding_map=encoding_map, max_distance_threshold=k, search_method="brute_force_cython")
    return time.perf_counter() - t0, dups


def reference_search(h, k, have_imagededup):
    """(seconds, pairs, name) of the search ours is checked against."""
    if have_imagededup:
        t_ref, dups = imagededup_search(h, k)
        pairs = {(min(int(a), int(b)), max(int(a), int(b))) for a, lst in dups.items() for b in lst}
        return t_ref, pairs, "imagededup brute_force_cython"
    from curation.neardup import brute_force_pairs

    t0 = time.perf_counter()
    bi, bj = brute_force_pairs(h, k)
    return time.perf_counter() - t0, set(zip(bi.tolist(), bj.tolist(), strict=True)), "numpy brute force"


def compare_at_equal_size(n, k, have_imagededup):
    # Distinct hashes (no 0-bit copies), so both searches must report exactly the same pairs.
    h = np.unique(planted(n, k, seed=n, min_bits=1))
    t_ours, _, (i, j) = ours(h, k)
    ours_pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    t_ref, ref_pairs, name = reference_search(h, k, have_imagededup)
    same = "same pairs" if ref_pairs == ours_pairs else f"PAIRS DIFFER ({len(ref_pairs)} vs {len(ours_pairs)})"
    if have_imagededup:
        anchor = f"; anchor {ANCHOR_IMAGEDEDUP[n]:.1f} s" if n in ANCHOR_IMAGEDEDUP else ""
        versus = f"{t_ref / t_ours:,.0f}x faster (target >= {TARGET_SPEEDUP:.0f}x: {t_ref / t_ours / TARGET_SPEEDUP:.1f} of it)"
    else:
        anchor = ""
        versus = f"{t_ref / t_ours:,.0f}x faster than numpy brute force (not the anchor; no ratio to the target)"
    print(f"n={len(h):>9,}: ours {t_ours:7.3f} s, {name} {t_ref:7.2f} s{anchor} -> {versus}; "
          f"{len(ours_pairs)} pairs, {same}")
    return ref_pairs == ours_pairs


def time_ours_alone(n, k, largest):
    h = planted(n, k, seed=1)
    t, labels, (i, _) = ours(h, k)
    groups = np.bincount(labels)
    line = (f"n={n:>9,}: ours {t:7.2f} s ({len(i):,} edges, {int((groups > 1).sum()):,} groups, "
            f"{int(groups[groups > 1].sum()):,} images in groups)")
    if n == 1_000_000:
        line += f" -> {t / TARGET_1M_SECONDS:.3f} of the {TARGET_1M_SECONDS:.0f} s target"
    print(line)
    if n == largest:
        from curation.neardup import query_pairs

        q = h[:256]
        t0 = time.perf_counter()
        query_pairs(q, h, k)
        per = (time.perf_counter() - t0) / len(q)
        print(f"incremental (assign_near_duplicates' scan): {per * 1000:.2f} ms per new image against {n:,}")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--imagededup-sizes", default="10200")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--db-rows", type=int, default=0,
                    help="also run find_duplicates over this many Image rows in --database-url (a scratch database)")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    if args.db_rows and not args.database_url:
        ap.error("--db-rows needs --database-url pointing at a scratch database (its images are replaced)")
    return args


def main():
    args = parse_args()
    k = args.k
    setup_django(args.database_url)
    ours(planted(1000, k), k)  # imports and first-call costs out of the way
    print(f"k={k}, {os.cpu_count()} cores, numpy {np.__version__}")
    try:
        import imagededup  # noqa: F401
        have_imagededup = True
    except ImportError:
        have_imagededup = False
        print("imagededup is not installed: the pairs are checked against numpy brute force, and no ratio to "
              "the imagededup target is printed (pip install -e '.[bench]' for it)")
    agree = all([compare_at_equal_size(int(s), k, have_imagededup) for s in args.imagededup_sizes.split(",") if s])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for n in sizes:
        time_ours_alone(n, k, max(sizes))
    if args.db_rows:
        db_run(args.db_rows, k)
    if not agree:
        print("CHECK FAILED: our search and the reference found different pairs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
