"""dHash throughput: SceneImg's compute_dhash against imagededup's DHash.encode_images, per core.

Both hash the same folder of generated photo-like 1024x768 JPEGs on one worker (one core), and the
script checks that the two agree on which pairs are near-duplicates of each other.

    .venv/bin/python bench/hashing.py [--n 400] [--size 1024x768]

Anchor (issue 4): at least 2x imagededup's images/s per core. imagededup's own published figure is
10,200 UKBench images (640x480) in 35.6 s on 4 vCPUs with dhash, about 72 images/s per core.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.test_settings")

ANCHOR_SPEEDUP = 2.0
IMAGEDEDUP_PUBLISHED_PER_CORE = 10_200 / 35.6 / 4


def make_folder(folder, n, width, height):
    from tests.images import encode, photo_like

    for i in range(n):
        (folder / f"{i:05d}.jpg").write_bytes(encode(photo_like(width, height, seed=i), "JPEG", quality=90))


def ours(files):
    from PIL import Image

    from crawl.ingest import compute_dhash

    hashes = {}
    for path in files:
        with Image.open(path) as im:
            hashes[path.name] = compute_dhash(im)
    return hashes


def theirs(folder):
    from imagededup.methods import DHash

    return DHash(verbose=False).encode_images(image_dir=str(folder), num_enc_workers=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--size", default="1024x768")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    import django

    django.setup()
    try:
        import imagededup  # noqa: F401
    except ImportError:
        sys.exit("imagededup is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_folder(folder, args.n, width, height)
        files = sorted(folder.glob("*.jpg"))
        theirs(folder)  # warm the page cache and imports for both
        t0 = time.perf_counter()
        mine = ours(files)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        other = theirs(folder)
        t_theirs = time.perf_counter() - t0
    rate_ours, rate_theirs = args.n / t_ours, args.n / t_theirs
    # Same pictures, same algorithm family: the hashes should mostly agree bit for bit.
    def bits(v):
        return format(v & (2**64 - 1), "064b")

    diffs = [sum(a != b for a, b in zip(bits(mine[name]), format(int(other[name], 16), "064b"), strict=True))
             for name in mine]
    print(f"{args.n} JPEGs {width}x{height}, one core each")
    print(f"  SceneImg compute_dhash   {rate_ours:8.1f} images/s")
    print(f"  imagededup encode_images {rate_theirs:8.1f} images/s "
          f"({rate_theirs / IMAGEDEDUP_PUBLISHED_PER_CORE:.2f}x its published ~{IMAGEDEDUP_PUBLISHED_PER_CORE:.0f}/core)")
    print(f"  speed-up {rate_ours / rate_theirs:.2f}x (anchor: at least {ANCHOR_SPEEDUP:.0f}x; "
          f"ratio to anchor {rate_ours / rate_theirs / ANCHOR_SPEEDUP:.2f})")
    print(f"  hash agreement: median {sorted(diffs)[len(diffs) // 2]} bits differ, max {max(diffs)} "
          "(different resampling before the 9x8 grid)")


if __name__ == "__main__":
    main()
