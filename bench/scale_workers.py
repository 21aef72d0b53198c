"""The same 2,000-URL import run by 1, 2 and 4 RQ workers on Postgres, Redis and S3.

    .venv/bin/python bench/scale_workers.py [--n 2000] [--workers-list 1 2 4] [--threads 16] [--per-host 64]
        [--storage s3|local]

Each round gets a fresh Postgres database (scale_bench on 127.0.0.1:5432), fresh media storage (by
default a bucket of its own on the S3 server `scripts/s3.sh` starts, SeaweedFS on loopback, as a
deployment on several machines would use; `--storage local` a media folder) and an
empty Redis database (REDIS_URL, default db 14, flushed), launches `import_urls --enqueue` (the list
split into batch jobs) and starts that many `rqworker crawl --burst` processes, timed from the launch
to the last worker's exit. The photos are the side-by-side benchmark's (/tmp/side-photos-N, 1024x768
JPEGs of about 120 KB, made here if missing) served by one loopback `http.server`.

Prints images/s per round, the speed-up over one worker and its ratio to the anchor, a linear speed-up
(N workers, N times one worker's rate; on a 2-core machine the cores, not the workers, set the ceiling),
and the counts that prove nothing was stored twice: Image rows, distinct sha256, Sources, distinct URLs
among them, stored objects (or files) under images/ and thumbs/.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
DB = "scale_bench"


def photos(n):
    folder = Path(f"/tmp/side-photos-{n}")
    if not (folder / ".done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        import numpy as np
        from PIL import Image

        y, x = np.mgrid[0:768, 0:1024]
        for i in range(n):
            r = np.random.default_rng(i)
            base = np.stack([(x * (0.2 + r.random()) + y * 0.1) % 256, (y * (0.3 + r.random())) % 256,
                             ((x + y) * 0.15 + 60 * r.random()) % 256], -1)
            for _ in range(14):  # as ../shared/bench/img2dataset_side_by_side.sh makes them
                x0, y0 = r.integers(0, 1024 - 60), r.integers(0, 768 - 60)
                base[y0:y0 + r.integers(20, 160), x0:x0 + r.integers(20, 200)] = r.integers(0, 255, 3)
            base += r.normal(0, 4, base.shape)
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / f"p{i:05d}.jpg", quality=88)
        (folder / ".done").touch()
    return folder


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(statement, db="postgres"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", statement], check=True,
                   capture_output=True)


def query(statement):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qAtc", statement], check=True,
                         capture_output=True, text=True).stdout
    return [int(v) for v in out.split("|")]


def manage(env, *args, **kwargs):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True,
                          **kwargs)


def one_round(workers, urls, media, env, threads, per_host):
    sql(f"drop database if exists {DB}")
    sql(f"create database {DB}")
    manage(env, "migrate", "-v0")
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    t0 = time.monotonic()
    manage(env, "import_urls", str(urls), "--enqueue", "--workers", str(threads), "--per-host", str(per_host))
    procs = [subprocess.Popen([PY, "manage.py", "rqworker", "crawl", "--burst"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    for p in procs:
        p.wait()
    seconds = time.monotonic() - t0
    status = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qAtc",
                             "select status || ' ' || counters::text from curation_run"], capture_output=True,
                            text=True).stdout.strip()
    images, shas = query("select count(*), count(distinct sha256) from curation_image")
    sources, urls_seen, stored = query("select count(*), count(distinct url_hash), "
                                       "count(*) filter (where outcome = 'stored') from crawl_source")
    return seconds, status, (images, shas, sources, urls_seen, stored, *media.count())


class LocalMedia:
    def __init__(self, root):
        self.root = Path(root)

    def env(self):
        return {"MEDIA_ROOT": str(self.root)}

    def count(self):
        return [sum(1 for p in (self.root / folder).rglob("*") if p.is_file()) for folder in ("images", "thumbs")]


class BucketMedia:
    """A fresh bucket on the S3 server for one round; its objects are counted, then removed."""

    def __init__(self, name):
        import boto3

        self.endpoint = subprocess.run([str(ROOT / "scripts" / "s3.sh")], cwd=ROOT, check=True, capture_output=True,
                                       text=True).stdout.strip()
        self.key = os.environ.get("SCENEIMG_S3_ACCESS_KEY", "sceneimg")
        self.secret = os.environ.get("SCENEIMG_S3_SECRET_KEY", "sceneimg-local-secret")
        self.name = name
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                                   aws_secret_access_key=self.secret, region_name="us-east-1")
        self.remove()
        deadline = time.monotonic() + 60  # a SeaweedFS just started answers before its filer takes buckets
        while True:
            try:
                self.client.create_bucket(Bucket=name)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def env(self):
        return {"SCENEIMG_S3_BUCKET": self.name, "SCENEIMG_S3_ENDPOINT_URL": self.endpoint,
                "SCENEIMG_S3_ACCESS_KEY": self.key, "SCENEIMG_S3_SECRET_KEY": self.secret}

    def keys(self):
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            yield from (obj["Key"] for obj in page.get("Contents", []))

    def count(self):
        keys = list(self.keys())
        return [sum(k.startswith(folder + "/") for k in keys) for folder in ("images", "thumbs")]

    def remove(self):
        try:
            for key in self.keys():
                self.client.delete_object(Bucket=self.name, Key=key)
            self.client.delete_bucket(Bucket=self.name)
        except Exception:  # no such bucket yet
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers-list", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=16, help="downloads at once in each worker's job")
    parser.add_argument("--per-host", type=int, default=64,
                        help="downloads at once on the one loopback host, all workers together (import_urls --per-host)")
    parser.add_argument("--storage", choices=("s3", "local"), default="s3",
                        help="media on the S3 server (scripts/s3.sh) or in a local folder")
    args = parser.parse_args()
    folder = photos(args.n)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates = {}
    try:
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            urls = Path(tmp) / "urls.txt"
            names = sorted(p.name for p in folder.glob("*.jpg"))[:args.n]
            urls.write_text("".join(f"http://127.0.0.1:{port}/{name}\n" for name in names))
            time.sleep(0.5)
            for workers in args.workers_list:
                media = (BucketMedia(f"scale-bench-{workers}") if args.storage == "s3"
                         else LocalMedia(Path(tmp) / f"media-{workers}"))
                env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}", "DEBUG": "1",
                       "MEDIA_ROOT": str(Path(tmp) / "media"), "SCENEIMG_FETCH_ALLOW_PRIVATE": "127.0.0.1",
                       "REDIS_URL": os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/14"), **media.env()}
                try:
                    seconds, status, counts = one_round(workers, urls, media, env, args.threads, args.per_host)
                finally:
                    if args.storage == "s3":
                        media.remove()
                rates[workers] = len(names) / seconds
                images, shas, sources, urls_seen, stored, files, thumbs = counts
                base = rates[args.workers_list[0]] / args.workers_list[0]
                speedup = rates[workers] / rates[args.workers_list[0]]
                print(f"{workers} worker(s): {len(names)} URLs in {seconds:.1f} s = {rates[workers]:.1f} images/s; "
                      f"speed-up {speedup:.2f}x, ratio to a linear speed-up {rates[workers] / (base * workers):.2f}; "
                      f"images {images} (distinct sha256 {shas}), sources {sources} (distinct URLs {urls_seen}, "
                      f"stored {stored}), {args.storage} objects: images {files}, thumbnails {thumbs}; run {status}", flush=True)
    finally:
        server.terminate()
        sql(f"drop database if exists {DB}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
