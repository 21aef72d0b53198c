"""Review-queue claims on Postgres: latency of claiming a batch, and of "what is left", with reviewers
claiming at once over a large view; and a check that no two reviewers ever held the same image.

Seeds a separate database (default `sceneimg_bench_team`) with images in set-based SQL, then runs
`--reviewers` threads, each claiming `--rounds` batches and deciding every image of each batch through
curation's review path (which ends the leases), as reviewers working through a queue would.

    .venv/bin/python bench/team_claim.py                      # 200,000 images, 4 reviewers, 20 rounds
    .venv/bin/python bench/team_claim.py --images 1000000 --reviewers 8

Anchor: p95 of one claim (a batch of 50) <= 100 ms. Each line prints its ratio to it.
"""
import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0

SEED_SQL = """
TRUNCATE curation_image, curation_review, team_queueitem, team_queue, team_savedview RESTART IDENTITY CASCADE;
INSERT INTO curation_image (id, sha256, file, thumbnail, width, height, format, byte_size, dhash, created_at,
                            auto_decision, auto_reason, final_decision, vlm_score, uncalibrated{extra_columns})
SELECT g, lpad(to_hex(g), 64, '0'), 'images/' || g || '.jpg', 'thumbs/' || g || '.jpg', 1024, 768, 'jpeg',
       150000, hashint8(g), now(), CASE WHEN g %% 3 = 0 THEN 'reject' ELSE 'keep' END, 'bench',
       CASE WHEN g %% 3 = 0 THEN 'reject' ELSE 'keep' END, (g %% 1000) / 1000.0, false{extra_values}
FROM generate_series(1, %(n)s) g;
ANALYZE curation_image;
"""
SEEDED = {"id", "sha256", "file", "thumbnail", "width", "height", "format", "byte_size", "dhash", "created_at",
          "auto_decision", "auto_reason", "final_decision", "vlm_score", "uncalibrated"}
# Columns other apps may add to Image later: Django keeps their defaults in Python, not in the table.
EMPTY = {"boolean": "false", "integer": "0", "bigint": "0", "smallint": "0", "double precision": "0",
         "character varying": "''", "text": "''"}


def seed_sql(cursor):
    cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
                   "'curation_image' AND is_nullable = 'NO' AND column_default IS NULL")
    extra = [(name, EMPTY[kind]) for name, kind in cursor.fetchall() if name not in SEEDED and kind in EMPTY]
    return SEED_SQL.format(extra_columns="".join(f", {name}" for name, _ in extra),
                           extra_values="".join(f", {value}" for _, value in extra))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=200_000)
    p.add_argument("--db", default="sceneimg_bench_team", help="database to seed (created if missing)")
    p.add_argument("--reviewers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=20, help="batches each reviewer claims and decides")
    p.add_argument("--warmup", type=int, default=10, help="batches one reviewer decides before measuring")
    p.add_argument("--view", default="human=none&sort=-vlm", help="the queue's saved view (a gallery filter)")
    return p.parse_args()


def configure(db):
    # The same scratch-database set-up as the gallery benchmark: its own Postgres database, DEBUG off.
    sys.path.insert(0, str(ROOT / "bench"))
    import gallery_latency

    gallery_latency.configure_env(db)
    gallery_latency.ensure_database(db)
    import django

    django.setup()


def seed(n, view_filter, reviewers):
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from team.models import Queue, SavedView

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(seed_sql(cur), {"n": n})
    print(f"seeded {n:,} images in {time.perf_counter() - started:.1f} s")
    lead, _ = User.objects.get_or_create(username="bench-lead", defaults={"is_staff": True})
    users = [User.objects.get_or_create(username=f"bench-reviewer-{i}")[0] for i in range(reviewers)]
    view = SavedView.objects.create(name="bench", querystring=view_filter, owner=lead, shared=True)
    queue = Queue.objects.create(name="bench", view=view, created_by=lead)
    queue.reviewers.set(users)
    return queue, users


def work(queue, user, rounds, claims, overlaps, held_now, lock):
    from django.db import connection

    from curation import review
    from team import leases

    try:
        for _ in range(rounds):
            started = time.perf_counter()
            ids = leases.claim(queue, user)
            claims.append((time.perf_counter() - started) * 1000)
            with lock:
                clash = set(ids) & set().union(*(v for k, v in held_now.items() if k != user.pk))
                overlaps.extend(clash)
                held_now[user.pk] = set(ids)
            if not ids:
                break
            review.set_decision(ids, "keep", user)
            with lock:
                held_now[user.pk] = set()
    finally:
        connection.close()


def warm_up(queue, user, rounds):
    """A queue some way in, with the planner's statistics of it (autovacuum's ANALYZE, done here at once):
    a freshly created queue table looks empty to the planner, which then plans the anti-join badly."""
    from django.db import connection

    from curation import review
    from team import leases

    for _ in range(rounds):
        review.set_decision(leases.claim(queue, user), "keep", user)
    with connection.cursor() as cur:
        cur.execute("ANALYZE team_queueitem")


def percentile(values, q):
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main():
    args = parse_args()
    configure(args.db)
    from team import leases

    queue, users = seed(args.images, args.view, args.reviewers)
    warm_up(queue, users[0], args.warmup)
    claims, overlaps, held_now, lock = [], [], {}, threading.Lock()
    threads = [threading.Thread(target=work, args=(queue, user, args.rounds, claims, overlaps, held_now, lock))
               for user in users]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    p50, p95 = statistics.median(claims), percentile(claims, 95)
    print(f"claims: {len(claims)} by {len(users)} reviewers at once in {elapsed:.1f} s (each batch decided)")
    print(f"claim p50 {p50:.1f} ms, p95 {p95:.1f} ms  (ratio to the {TARGET_MS:.0f} ms anchor: {p95 / TARGET_MS:.2f})")
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        left = leases.left(queue, users[0])
        timings.append((time.perf_counter() - started) * 1000)
    print(f"'what is left' ({'exact' if left[1] else 'more than'} {left[0]:,}): p50 {statistics.median(timings):.1f} ms "
          f"(ratio to the anchor: {statistics.median(timings) / TARGET_MS:.2f})")
    print(f"images held by two reviewers at once: {len(overlaps)}")
    return 1 if overlaps else 0


if __name__ == "__main__":
    sys.exit(main())
