"""Progress dashboard at 1,000,000 images: how long the refresh job takes, and the page's p95.

Seeds its own Postgres database (default `sceneimg_bench_dash`) the way bench/gallery_latency.py does
(images, scores, verdicts, sources), adds a Review row for every image a person decided (spread over
five reviewers and thirty days), runs the refresh job once, then renders the page in-process with
Django's test client.

    .venv/bin/python bench/dashboard_page.py                  # seed once (a few minutes), then measure
    .venv/bin/python bench/dashboard_page.py --images 100000 --requests 100

Anchor: the page at p95 <= 500 ms at 1M images. The refresh job has no target; it is printed so the
refresh interval can be chosen.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import gallery_latency  # noqa: E402 (bench/ is not a package)

TARGET_MS = 500.0

REVIEWS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                       date_joined)
SELECT '!', false, 'reviewer' || r, '', '', '', false, true, now() FROM generate_series(1, 5) r
ON CONFLICT (username) DO NOTHING;
INSERT INTO curation_review (image_id, user_id, old, new, note, created_at)
SELECT i.id, u.id, i.auto_decision, i.human_decision, '', now() - (i.id %% 30) * interval '1 day'
FROM curation_image i JOIN auth_user u ON u.username = 'reviewer' || (1 + i.id %% 5)
WHERE i.human_decision IS NOT NULL
"""


def add_reviews():
    from django.db import connection, transaction

    from curation.models import Review

    if Review.objects.exists():
        return
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        for statement in REVIEWS_SQL.split(";\n"):
            cur.execute(statement.replace("%%", "%"))
        cur.execute("ANALYZE curation_review")
    print(f"reviews added in {time.perf_counter() - started:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=1_000_000)
    p.add_argument("--db", default="sceneimg_bench_dash")
    p.add_argument("--reseed", action="store_true")
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args()
    gallery_latency.configure_env(args.db)
    gallery_latency.ensure_database(args.db)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from curation.models import Image
    from dashboard import refresh

    call_command("migrate", verbosity=0)
    gallery_latency.seed(args.images, args.reseed)
    add_reviews()

    started = time.perf_counter()
    snapshot = refresh.refresh()
    job_s = time.perf_counter() - started
    n = Image.objects.order_by("-id").values_list("id", flat=True).first() or 0
    print(f"refresh job at {n:,} images: {job_s:.1f} s (figures computed in {snapshot.seconds:.1f} s)")

    user, _ = User.objects.get_or_create(username="bench-dash")
    client = Client()
    client.force_login(user)
    times = []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        response = client.get("/dashboard/")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"dashboard page: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over {len(times)} requests "
          f"({p95 / TARGET_MS:.3f}x the 500 ms anchor); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
