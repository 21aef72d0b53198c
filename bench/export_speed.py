"""Snapshot + export speed: freeze N images as a snapshot and write it as an imagefolder zip.

Seeds a separate database with N images whose files are small generated JPEGs in local storage
(content-addressed, as ingest stores them), each with one CLIP score, one VLM verdict and one
source, all bulk-created. Then times, through the product's own functions:

    freeze    curation.export.freeze: every image's export record, frozen as SnapshotImage rows
    write     curation.export.export_snapshot: the zip (images, metadata.jsonl, sceneimg.csv,
              provenance.csv, manifest.json with a sha256 per file)
    again     the same snapshot written again, checked byte for byte against the first zip

    .venv/bin/python bench/export_speed.py                  # 100,000 images
    .venv/bin/python bench/export_speed.py --images 20000 --format webdataset

Postgres when DATABASE_URL points at it (a database named by --db, created if missing), else a
temporary SQLite file. Figure: images/s for freeze + write. Anchor: 1,000 images/s, a 100,000-image
set snapshotted and exported in under two minutes; each line prints its ratio to it.
"""
import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ANCHOR = 1000.0  # images/s
SEED_BATCH = 5000


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--format", default="zip", choices=("zip", "folder", "webdataset", "parquet"))
    p.add_argument("--db", default="sceneimg_bench_export",
                   help="Postgres database to use (created if missing; its rows are replaced)")
    return p.parse_args()


def configure(args, work):
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        parts = urlsplit(base)
        os.environ["DATABASE_URL"] = urlunsplit((parts.scheme, parts.netloc, f"/{args.db}", parts.query, ""))
        ensure_database(parts, args.db)
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "sceneimg_site.test_settings"
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ["DEBUG"] = "0"  # no query log growing with every row
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_database(parts, db):
    import psycopg

    admin = urlunsplit((parts.scheme.replace("postgresql", "postgres"), parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')


def small_jpeg(rng):
    """A 64x48 JPEG of random blocks (about 1-2 KB), different for every call."""
    from PIL import Image as PILImage

    from tests.images import encode

    im = PILImage.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3)).resize((64, 48), PILImage.NEAREST)
    return encode(im, "JPEG", quality=80)


def seed(n):
    """n images with files, plus one score, verdict and source each. Returns seconds spent."""
    from django.core.files.storage import default_storage

    from crawl.models import Source
    from curation.models import FilterScore, Image, Snapshot, SnapshotImage
    from vlm.models import PromptVersion, VlmVerdict

    started = time.perf_counter()
    SnapshotImage.objects.all().delete()
    Snapshot.objects.all().delete()
    Image.objects.all().delete()
    pv, _ = PromptVersion.objects.get_or_create(content_hash="b" * 64, defaults={
        "name": "v1", "system_text": "Judge the room.", "user_template": "Is it lived-in?"})
    media = Path(default_storage.location)
    rng = random.Random(1)
    for start in range(0, n, SEED_BATCH):
        rows = []
        for i in range(start, min(n, start + SEED_BATCH)):
            data = small_jpeg(rng)
            sha = hashlib.sha256(data).hexdigest()
            name = f"images/{sha[:2]}/{sha[2:4]}/{sha}.jpg"
            (media / name).parent.mkdir(parents=True, exist_ok=True)
            (media / name).write_bytes(data)
            decision = "keep" if i % 5 else "reject"
            rows.append(Image(sha256=sha, file=name, thumbnail=name, width=64, height=48, format="jpeg",
                              byte_size=len(data), dhash=rng.getrandbits(63), auto_decision=decision,
                              final_decision="keep", auto_stage=30, clip_indoor_margin=0.1, vlm_score=0.7,
                              auto_reason="VLM keep: lived-in kitchen"))
        images = Image.objects.bulk_create(rows)
        FilterScore.objects.bulk_create([FilterScore(
            image=img, scorer_key="clip:ViT-B-32:none:prompts-v1", scores={"indoor": 0.3, "outdoor": 0.2},
            indoor_margin=0.1, passed=True, uncalibrated=True) for img in images])
        VlmVerdict.objects.bulk_create([VlmVerdict(
            image=img, prompt_version=pv, backend="openai", model="gpt-4.1", decision="keep", score=0.7,
            reason="lived-in kitchen", tags=["kitchen"]) for img in images])
        Source.objects.bulk_create([Source(
            image=img, provider="baidu", query="凌乱的厨房", url=f"http://img.test/{img.pk}.jpg",
            page_url=f"http://page.test/{img.pk}.html", outcome="stored") for img in images])
    return time.perf_counter() - started


def timed(label, n, fn):
    """Wall time, and this process's CPU time (on a shared machine the wall time includes waiting for a core;
    the database server's CPU is not counted in either column's CPU figure)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rate = n / seconds if seconds else float("inf")
    print(f"{label:<16} {n:>8} images in {seconds:7.1f} s  {rate:9.0f} images/s  ({rate / ANCHOR:.2f}x anchor)"
          f"  [{cpu:6.1f} s CPU here: {n / cpu if cpu else float('inf'):.0f} images per CPU-second]")
    return result, seconds


def measure(args, work, profile=False):
    from curation import export
    from curation.runs import Tracker

    out_a = work / ("a.zip" if args.format == "zip" else "a")
    out_b = work / ("b.zip" if args.format == "zip" else "b")
    n = args.images
    snapshot, freeze_s = timed("freeze", n, lambda: export.freeze(Tracker(), "final=keep", name="bench"))
    _, write_s = timed(f"write {args.format}", n, lambda: export.export_snapshot(Tracker(), snapshot, out_a, args.format))
    total = freeze_s + write_s
    print(f"{'snapshot+export':<16} {n:>8} images in {total:7.1f} s  {n / total:9.0f} images/s  "
          f"({n / total / ANCHOR:.2f}x anchor {ANCHOR:.0f} images/s)")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    timed("write again", n, lambda: export.export_snapshot(Tracker(), snapshot, out_b, args.format))
    same = digest_of(out_a) == digest_of(out_b)
    print("second export identical byte for byte:", "yes" if same else "NO")
    return same


def digest_of(path):
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else "").encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="sceneimg-export-bench-") as tmp:
        work = Path(tmp)
        configure(args, work)
        from django.db import connection

        print(f"database: {connection.vendor}; seeding {args.images} images ...", flush=True)
        print(f"seeded in {seed(args.images):.1f} s", flush=True)
        same = measure(args, work)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
