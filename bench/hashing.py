"""dHash throughput of the product's own hashing path, per core, against imagededup's DHash.

Every product caller of compute_dhash (ingest, remove_seed_duplicates' seeds, reverse-image
candidates) hands it an image crawl.ingest.decode has already fully decoded. The figure times that
path from the file: read the bytes, decode them (crawl.ingest.decode), compute_dhash. imagededup's
encode_images also starts from the files. Both run on one core over the same folder of generated
photo-like JPEGs, every fourth of which is a near-copy (90% size, recompressed) of the one before.

Timed too, and labelled as not the product's path: compute_dhash on a JPEG that is opened but not
decoded, which it decodes at reduced scale (libjpeg's DCT scaling, Image.draft).

Check: the product path and the reduced-scale path must each find exactly the planted near-duplicate
pairs within SCENEIMG_NEARDUP_THRESHOLD bits, and nothing else; the script exits 1, loudly, when
either does not. imagededup's pairs are shown beside them.

    .venv/bin/python bench/hashing.py [--n 400] [--size 1024x768]

Figure: product-path images/s. Anchor: imagededup's images/s on the same files; target at least 2x.
(imagededup's own published figure: 10,200 UKBench images, 640x480, in 35.6 s on 4 vCPUs with dhash,
about 72 images/s per core.)
"""
import argparse
import io
import itertools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.test_settings")

TARGET_SPEEDUP = 2.0
IMAGEDEDUP_PUBLISHED_PER_CORE = 10_200 / 35.6 / 4


def make_folder(folder, n, width, height):
    """n JPEGs; every fourth is a near-copy of the one before. Returns the planted pairs of names."""
    from tests.images import encode, photo_like

    planted = set()
    for i in range(n):
        name = f"{i:05d}.jpg"
        if i % 4 == 3:
            im = photo_like(width, height, seed=i - 1)
            data = encode(im.resize((width * 9 // 10, height * 9 // 10)), "JPEG", quality=70)
            planted.add((f"{i - 1:05d}.jpg", name))
        else:
            data = encode(photo_like(width, height, seed=i), "JPEG", quality=90)
        (folder / name).write_bytes(data)
    return planted


def product_path(files):
    """What ingest does: the file's bytes, fully decoded by crawl.ingest.decode, then hashed."""
    from crawl.ingest import compute_dhash, decode

    return {path.name: compute_dhash(decode(path.read_bytes())) for path in files}


def reduced_scale_path(files):
    """Not the product's path: compute_dhash on an undecoded JPEG decodes it at reduced scale."""
    from PIL import Image

    from crawl.ingest import compute_dhash

    hashes = {}
    for path in files:
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            hashes[path.name] = compute_dhash(im)
    return hashes


def imagededup_path(folder):
    from imagededup.methods import DHash

    encoded = DHash(verbose=False).encode_images(image_dir=str(folder), num_enc_workers=1)
    return {name: int(value, 16) for name, value in encoded.items()}


def timed(fn, arg):
    start = time.perf_counter()
    result = fn(arg)
    return result, time.perf_counter() - start


def near_pairs(hashes, k):
    """Every pair of names whose 64-bit hashes differ in at most k bits."""
    return {(a, b) for a, b in itertools.combinations(sorted(hashes), 2)
            if bin((hashes[a] ^ hashes[b]) & (2**64 - 1)).count("1") <= k}


def describe(found, planted):
    if found == planted:
        return f"{len(found)} found, exactly the planted ones"
    return (f"{len(found)} found: {len(planted - found)} planted pairs missed, "
            f"{len(found - planted)} unplanted pairs found")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--size", default="1024x768")
    return p.parse_args()


def main():
    args = parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    import django

    django.setup()
    from django.conf import settings

    try:
        import imagededup  # noqa: F401
    except ImportError:
        sys.exit("imagededup is not installed (pip install -e '.[bench]'): the figure is a ratio to it")
    logging.disable(logging.INFO)  # imagededup logs every encode_images call at INFO, twice
    k = settings.SCENEIMG_NEARDUP_THRESHOLD
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        planted = make_folder(folder, args.n, width, height)
        files = sorted(folder.glob("*.jpg"))
        imagededup_path(folder)  # page cache and imports warm for every path
        product, t_product = timed(product_path, files)
        reduced, t_reduced = timed(reduced_scale_path, files)
        other, t_other = timed(imagededup_path, folder)
    rate, rate_reduced, rate_other = args.n / t_product, args.n / t_reduced, args.n / t_other
    print(f"{args.n} JPEGs {width}x{height} ({len(planted)} near-copies), one core each")
    print(f"  SceneImg, product path (bytes -> ingest.decode -> compute_dhash) {rate:8.1f} images/s")
    print(f"  SceneImg, reduced-scale decode (draft; not the product's path)   {rate_reduced:8.1f} images/s")
    print(f"  imagededup encode_images                                        {rate_other:8.1f} images/s "
          f"({rate_other / IMAGEDEDUP_PUBLISHED_PER_CORE:.2f}x its published ~{IMAGEDEDUP_PUBLISHED_PER_CORE:.0f}/core)")
    print(f"  product path / imagededup = {rate / rate_other:.2f}x (target at least {TARGET_SPEEDUP:.0f}x: "
          f"{rate / rate_other / TARGET_SPEEDUP:.2f} of it)")
    print(f"near-duplicate pairs within {k} bits ({len(planted)} planted):")
    failures = []
    for label, hashes in (("product path", product), ("reduced-scale", reduced), ("imagededup", other)):
        found = near_pairs(hashes, k)
        print(f"  {label:14} {describe(found, planted)}")
        if label != "imagededup" and found != planted:
            failures.append(label)
    if failures:
        print(f"CHECK FAILED: the {' and '.join(failures)} did not find exactly the planted near-duplicate pairs",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
