"""Gallery latency at 1,000,000 images: p50 and p95 server time under 16 concurrent clients.

Seeds a separate Postgres database (default `sceneimg_bench`) with images, CLIP scores, VLM verdicts
under two prompt versions, and sources, all in set-based SQL (generate_series), then serves the real
Django app with gunicorn and drives it with concurrent HTTP clients. "Server time" is measured inside
the worker around the WSGI call (routing, auth, queries, template rendering); the client-observed
latency, which adds queueing behind busy workers, is printed next to it.

    .venv/bin/python bench/gallery_latency.py                 # seed once (a few minutes), then measure
    .venv/bin/python bench/gallery_latency.py --reseed        # drop the rows and seed again
    .venv/bin/python bench/gallery_latency.py --images 100000 --requests 160

Anchor: p95 server time per request <= 50 ms. Each line prints its ratio to it.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0

# name -> gallery querystring. The first is the plain gallery; the rest are filters a reviewer uses,
# including the ones expected to be heaviest (EXISTS over verdicts or sources, sparse matches).
SCENARIOS = [
    ("gallery", ""),
    ("final=keep", "final=keep"),
    ("sort=-vlm&vlm_min=0.6", "sort=-vlm&vlm_min=0.6"),
    ("indoor_min=0.1&sort=-indoor", "indoor_min=0.1&sort=-indoor"),
    ("disagree=1", "disagree=1"),
    ("human=keep", "human=keep"),
    ("uncalibrated=1", "uncalibrated=1"),
    ("dups=1", "dups=1"),
    ("tag=kitchen", "tag=kitchen"),
    ("tag=render (rare)", "tag=render"),
    ("tag=nosuchtag (no match)", "tag=nosuchtag"),
    ("sort=-vlm&tag=render", "sort=-vlm&tag=render"),
    ("verdict A keep & B reject", "model=gpt-4.1&verdict={pv1}:keep&verdict={pv2}:reject"),
    ("pv=B&tag=messy&final=keep", "pv={pv2}&tag=messy&final=keep"),
    ("run=7", "run={run7}"),
    ("query", "query=%E5%87%8C%E4%B9%B1%E7%9A%84%E5%8E%A8%E6%88%BF"),
    ("provider=url_list&final=reject", "provider=url_list&final=reject"),
]

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=1_000_000)
    p.add_argument("--db", default="sceneimg_bench", help="database to seed and serve (created if missing)")
    p.add_argument("--reseed", action="store_true", help="truncate the bench tables and seed again")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    p.add_argument("--requests", type=int, default=320, help="requests per scenario (spread over the clients)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn worker processes")
    p.add_argument("--port", type=int, default=0, help="port for gunicorn (default: a free one)")
    p.add_argument("--seed-only", action="store_true", help="seed (if needed) and stop")
    p.add_argument("--only", default="", help="comma-separated scenario names to run (default all)")
    return p.parse_args()


def bench_database_url(db):
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("DATABASE_URL must point at Postgres for this benchmark")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def configure_env(db):
    os.environ["DATABASE_URL"] = bench_database_url(db)
    os.environ["DJANGO_SETTINGS_MODULE"] = "sceneimg_site.settings"
    # Production-like: DEBUG off (no query log), plain HTTP on loopback.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))


def ensure_database(db):
    import psycopg

    admin_url = bench_database_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')
            print(f"created database {db}")


SEED_SQL = """
SET LOCAL synchronous_commit = off;
TRUNCATE curation_image, curation_filterscore, vlm_vlmverdict, vlm_promptversion, crawl_source, curation_run,
         curation_review RESTART IDENTITY CASCADE;

INSERT INTO curation_run (id, kind, label, work_key, params, status, counters, total, jobs_total, jobs_done,
                          job_ids, error, result, notice, created_at)
SELECT r, CASE WHEN r % 3 = 0 THEN 'import' ELSE 'crawl' END, 'bench run ' || r, '', '{}', 'done',
       '{}', NULL, 1, 1, '[]', '', '', '', now() - r * interval '1 hour'
FROM generate_series(1, 20) r;

INSERT INTO vlm_promptversion (id, name, system_text, user_template, content_hash, source_file, created_at)
VALUES (1, 'v1', 'judge', 'judge this', repeat('1', 64), 'prompts/v1.toml', now()),
       (2, 'v2', 'judge', 'judge this', repeat('2', 64), 'prompts/v2.toml', now());

-- Images: 60 % keep, 35 % reject, 5 % undecided automatically; 3 % reviewed by people, a fifth of
-- those against the machine; 10 % uncalibrated; 80 % with a VLM score; pairs of near-duplicates.
INSERT INTO curation_image (id, sha256, file, thumbnail, width, height, format, byte_size, dhash, created_at,
                            auto_decision, auto_reason, human_decision, final_decision, clip_indoor_margin,
                            clip_moderate_margin, object_count, vlm_score, uncalibrated, dup_group_id)
SELECT g, lpad(to_hex(g), 64, '0'),
       'images/' || lpad(to_hex(g), 64, '0') || '.jpg', 'thumbs/' || lpad(to_hex(g), 64, '0') || '.jpg',
       1024, 768, 'jpeg', 150000, (hashint8(g)), now() - (%(n)s - g) * interval '1 second',
       a.auto, 'bench', h.human, coalesce(h.human, a.auto),
       round((random() * 0.3 - 0.1)::numeric, 4)::float8, round((random() * 0.2 - 0.1)::numeric, 4)::float8,
       (random() * 30)::int,
       CASE WHEN g % 5 <> 0 THEN round(random()::numeric, 3)::float8 END,
       g % 10 = 3,
       CASE WHEN g % 40 = 1 THEN g WHEN g % 40 = 2 THEN g - 1 END
FROM generate_series(1, %(n)s) g
CROSS JOIN LATERAL (SELECT CASE WHEN g % 20 < 12 THEN 'keep' WHEN g % 20 < 19 THEN 'reject' END AS auto) a
CROSS JOIN LATERAL (
    SELECT CASE WHEN g % 100 < 3 THEN
        CASE WHEN g % 500 < 3 THEN (CASE WHEN a.auto = 'keep' THEN 'reject' ELSE 'keep' END) ELSE a.auto END
    END AS human) h;

INSERT INTO curation_filterscore (scorer_key, scores, indoor_margin, moderate_margin, object_count, passed,
                                  uncalibrated, created_at, image_id, run_id)
SELECT 'clip:ViT-B-32:laion2b_s34b_b79k:v1', jsonb_build_object('indoor', 0.25, 'outdoor', 0.2),
       coalesce(clip_indoor_margin, 0), clip_moderate_margin, object_count, coalesce(auto_decision = 'keep', false),
       uncalibrated, now(), id, 20
FROM curation_image;

-- Verdicts: prompt v1 on every image, v2 on a third; scores from a hash (a bare random() in a
-- LATERAL would be evaluated once); 1 %% errors; tags from a small vocabulary
-- ("render" on about 1 %%).
INSERT INTO vlm_vlmverdict (backend, model, decision, score, reason, tags, raw_response, latency_ms,
                            input_tokens, output_tokens, cost_usd, error, created_at, updated_at, image_id,
                            prompt_version_id, run_id)
SELECT 'openai', 'gpt-4.1',
       CASE WHEN i.id %% 100 = 7 THEN NULL WHEN s.score >= 0.5 THEN 'keep' ELSE 'reject' END,
       CASE WHEN i.id %% 100 = 7 THEN NULL ELSE s.score END,
       (ARRAY['lived-in kitchen, cluttered counter', 'tidy showroom bedroom', 'messy desk with many objects',
              'outdoor scene', 'living room with toys on the floor', 'render, not a photo'])[1 + (i.id + pv) %% 6],
       CASE WHEN i.id %% 97 = 0 THEN '["render"]'::jsonb ELSE jsonb_build_array(
            (ARRAY['kitchen', 'bedroom', 'living-room', 'office', 'bathroom', 'garage'])[1 + i.id %% 6],
            (ARRAY['messy', 'tidy', 'moderate'])[1 + (i.id / 6) %% 3]) END,
       '', 800, 900, 60, 0.0021,
       CASE WHEN i.id %% 100 = 7 THEN 'ReadTimeout' ELSE '' END, now(), now(), i.id, pv, 19
FROM curation_image i
CROSS JOIN LATERAL (SELECT 1 AS pv UNION ALL SELECT 2 WHERE i.id %% 3 = 0) p
CROSS JOIN LATERAL (SELECT (abs(hashint8(i.id * 7 + pv)) %% 1000) / 1000.0::float8 AS score) s;

-- One sighting per image.
INSERT INTO crawl_source (provider, query, seed_name, url, url_hash, page_url, title, rank, path, outcome,
                          reason, extra, created_at, image_id, run_id, seed_image_id)
SELECT (ARRAY['baidu', 'baidu_similar', 'url_list', 'folder'])[1 + id %% 4],
       CASE WHEN id %% 4 = 0 THEN (ARRAY['凌乱的厨房', '客厅 杂乱', '卧室 生活', '书桌 杂物', '儿童房 玩具'])[1 + (id / 4) %% 5]
            ELSE '' END,
       '', 'https://img.example.test/' || id || '.jpg', md5(id::text) || md5(id::text), '', '', (id %% 30)::int,
       '', 'stored', '', '{}', now(), id, 1 + id %% 20, NULL
FROM curation_image;

SELECT setval(pg_get_serial_sequence('curation_image', 'id'), %(n)s);
SELECT setval(pg_get_serial_sequence('curation_run', 'id'), 20);
SELECT setval(pg_get_serial_sequence('vlm_promptversion', 'id'), 2);
"""


def seed(n, reseed):
    from django.db import connection, transaction

    with connection.cursor() as cur:
        # Sources are seeded last, in the same transaction: their count says the seed completed.
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM crawl_source LIMIT %s) t", [n])
        have = cur.fetchone()[0]
    if have >= n and not reseed:
        print(f"database already seeded ({have:,}+ sources); --reseed to start over")
        return
    started = time.perf_counter()
    print(f"seeding {n:,} images with scores, verdicts and sources ...", flush=True)
    with transaction.atomic(), connection.cursor() as cur:
        for statement in SEED_SQL.split(";\n"):
            statement = statement.strip()
            if not statement or all(line.startswith("--") for line in statement.splitlines()):
                continue
            t0 = time.perf_counter()
            cur.execute(statement.replace("%(n)s", str(n)).replace("%%", "%"))
            head = " ".join(line for line in statement.splitlines() if not line.startswith("--"))[:60]
            print(f"  {time.perf_counter() - t0:6.1f} s  {head}", flush=True)
    with connection.cursor() as cur:
        # VACUUM as autovacuum would on a live database (some test servers run with it off): without a
        # visibility map no scan is index-only, which is not what production sees.
        cur.execute("VACUUM (ANALYZE)")
    print(f"seeded in {time.perf_counter() - started:.0f} s")


def session_cookie():
    from django.contrib.auth import get_user_model
    from django.test import Client

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# --- The server: the real WSGI app, timed inside the worker ---------------------------------------

_app = None


def application(environ, start_response):
    """gunicorn entry point: Django's WSGI app with its own duration in an X-Server-Ms header."""
    global _app
    if _app is None:
        from django.core.wsgi import get_wsgi_application

        _app = get_wsgi_application()
    from django.db import connection

    captured = {}
    db_seconds = [0.0]

    def capture(status, headers, exc_info=None):
        captured.update(status=status, headers=headers)

    def time_query(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            db_seconds[0] += time.perf_counter() - t

    t0 = time.perf_counter()
    with connection.execute_wrapper(time_query):
        result = _app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    elapsed = (time.perf_counter() - t0) * 1000
    start_response(captured["status"], captured["headers"] + [
        ("X-Server-Ms", f"{elapsed:.3f}"), ("X-Db-Ms", f"{db_seconds[0] * 1000:.3f}"),
        ("X-Body-Bytes", str(len(body)))])
    return [body]


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port, workers):
    # Served as bench.gallery_latency from the checkout's root: with bench/ itself on the path, a bench
    # script named like an app (bench/dashboard.py) would shadow that app's package.
    cmd = [str(ROOT / ".venv" / "bin" / "gunicorn"), "--chdir", str(ROOT), "--pythonpath", str(ROOT),
           "-b", f"127.0.0.1:{port}", "-w", str(workers), "--worker-class", "sync", "--backlog", "256",
           "--log-level", "warning", "bench.gallery_latency:application"]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), start_new_session=True)
    import requests

    for _ in range(100):
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with status {proc.returncode}")
        try:
            if "X-Server-Ms" in requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).headers:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    sys.exit("gunicorn did not start")


def stop_server(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


# --- Clients ---------------------------------------------------------------------------------------

def measure(url, cookie, clients, total):
    """`total` GETs of `url` from `clients` threads; plain http.client keeps the client's own CPU use low."""
    import http.client

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Cookie": f"sessionid={cookie}"}
    server_ms, client_ms, db_ms, sizes, errors = [], [], [], [], []
    lock = threading.Lock()
    remaining = [total]

    def worker():
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
            finally:
                conn.close()
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if response.status != 200 or response.getheader("X-Server-Ms") is None:
                    errors.append(response.status)
                else:
                    server_ms.append(float(response.getheader("X-Server-Ms")))
                    db_ms.append(float(response.getheader("X-Db-Ms")))
                    sizes.append(int(response.getheader("X-Body-Bytes")))
                    client_ms.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return server_ms, client_ms, db_ms, sizes, errors, time.perf_counter() - t0


def pct(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main():
    args = parse_args()
    configure_env(args.db)
    ensure_database(args.db)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed(args.images, args.reseed)
    if args.seed_only:
        return
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM curation_image")
        n_images = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM vlm_vlmverdict")
        n_verdicts = cur.fetchone()[0]
    cookie = session_cookie()
    connection.close()
    subs = {"pv1": 1, "pv2": 2, "run7": 7}
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    scenarios = [(name, qs.format(**subs)) for name, qs in SCENARIOS if not only or name in only]

    print(f"\n{n_images:,} images, {n_verdicts:,} verdicts; {args.clients} clients, {args.workers} gunicorn "
          f"workers, {args.requests} requests per scenario, {os.cpu_count()} CPUs")
    port = args.port or free_port()
    proc = start_server(port, args.workers)
    results = []
    try:
        base = f"http://127.0.0.1:{port}/"
        for name, qs in scenarios:
            url = base + (f"?{qs}" if qs else "")
            measure(url, cookie, min(args.clients, 4), 8)  # warm caches and connections
            server, client, db, sizes, errors, wall = measure(url, cookie, args.clients, args.requests)
            if errors:
                print(f"{name}: {len(errors)} non-200 responses, e.g. {errors[:3]}")
            row = (name, pct(server, 50), pct(server, 95), pct(client, 50), pct(client, 95),
                   len(server) / wall if wall else 0, pct(db, 50), pct(db, 95), statistics.median(sizes or [0]))
            results.append(row)
            print(f"{name:30s} server p50 {row[1]:6.1f} p95 {row[2]:6.1f} ms ({row[2] / TARGET_MS:4.2f}x)"
                  f" | db p50 {row[6]:5.1f} p95 {row[7]:6.1f} ms | client p50 {row[3]:6.1f} p95 {row[4]:6.1f} ms"
                  f" | {row[5]:5.1f} req/s | {row[8] / 1024:4.0f} KiB | load {os.getloadavg()[0]:4.1f}", flush=True)
    finally:
        stop_server(proc)

    if not results:
        return
    filters = sorted(results[1:], key=lambda r: -r[2])[:3]
    print("\nsummary (target: p95 server time <= 50 ms)")
    for name, p50, p95, _, _, _, db50, db95, _ in results[:1] + filters:
        label = "gallery page" if name == "gallery" else f"heavy filter {name}"
        print(f"  {label:44s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ratio to target {p95 / TARGET_MS:4.2f}"
              f"   (database p50 {db50:5.1f} p95 {db95:5.1f} ms)")
    worst = max(r[2] for r in results)
    print(f"  worst p95 over all {len(results)} scenarios: {worst:.1f} ms ({worst / TARGET_MS:.2f}x target)")


if __name__ == "__main__":
    main()
