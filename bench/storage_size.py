"""Database size per million images, measured on Postgres, for the estimate in docs/deployment.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/storage_size.py --images 100000

Seeds a scratch database (default `sceneimg_size`) with bench/gallery_latency.py's rows (every image with
a CLIP score, a VLM verdict (a third with two), one Source), adds a 512-d float16 embedding per image and
one snapshot of every image, then prints pg_total_relation_size (table + indexes + TOAST) per table and
scaled to one million images. Anchor: 10 KB of database per image (its ratio is printed); the figure
grows with longer VLM reasons and raw responses, more sources per image and more snapshots.
"""
import argparse
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_BYTES_PER_IMAGE = 10_000

EXTRA_SQL = """
INSERT INTO curation_embedding (image_id, model_key, vector, created_at)
SELECT id, 'ViT-B-32:openai', v.bytes, now() FROM curation_image
CROSS JOIN LATERAL (SELECT decode(string_agg(md5(id::text || '.' || k), ''), 'hex') AS bytes
                    FROM generate_series(1, 64) k) v;
INSERT INTO curation_snapshot (id, name, filter, created_at, image_count, digest, provenance, complete)
VALUES (1, 'size', '', now(), 0, repeat('0', 64), '{}', true);
INSERT INTO curation_snapshotimage (snapshot_id, image_id, final_decision, record)
SELECT 1, id, final_decision, repeat('{"k": "a frozen export record"}', 40) FROM curation_image
"""


def load_gallery_bench():
    spec = importlib.util.spec_from_file_location("gallery_latency", ROOT / "bench" / "gallery_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DB_DEFAULTS = {"boolean": "false", "integer": "0", "bigint": "0", "smallint": "0", "double precision": "0",
               "character varying": "''", "text": "''", "jsonb": "'{}'"}


def fill_defaults(cur):
    """Columns added after the seed SQL was written (NOT NULL, defaults only in Django) get a database
    default in this scratch database, so the seed still runs."""
    cur.execute("""SELECT table_name, column_name, data_type FROM information_schema.columns
                   WHERE table_schema = 'public' AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'
                     AND table_name IN ('curation_image', 'curation_filterscore', 'vlm_vlmverdict', 'crawl_source',
                                        'curation_run', 'vlm_promptversion', 'curation_embedding',
                                        'curation_snapshot', 'curation_snapshotimage')""")
    for table, column, kind in cur.fetchall():
        if kind in DB_DEFAULTS:
            cur.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET DEFAULT {DB_DEFAULTS[kind]}')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--db", default="sceneimg_size")
    args = p.parse_args()
    gallery = load_gallery_bench()
    gallery.configure_env(args.db)
    gallery.ensure_database(args.db)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        fill_defaults(cur)
    gallery.seed(args.images, reseed=True)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("TRUNCATE curation_embedding, curation_snapshotimage, curation_snapshot CASCADE")
        for statement in EXTRA_SQL.strip().split(";\n"):
            cur.execute(statement)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        cur.execute("""SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC""")
        rows = cur.fetchall()
    scale = 1_000_000 / args.images
    print(f"{'table':32} {'total MB':>10} {'heap MB':>9} {'bytes/image':>12} {'GB per 1M images':>17}")
    total = 0
    for name, size, heap in rows:
        if size < 256 * 1024:
            continue
        total += size
        print(f"{name:32} {size / 2**20:10.1f} {heap / 2**20:9.1f} {size / args.images:12.0f} {size * scale / 2**30:17.2f}")
    per_image = total / args.images
    print(f"{'all of the above':32} {total / 2**20:10.1f} {'':9} {per_image:12.0f} {total * scale / 2**30:17.2f}")
    print(f"database bytes per image: {per_image:.0f}; anchor {ANCHOR_BYTES_PER_IMAGE} bytes: "
          f"ratio {per_image / ANCHOR_BYTES_PER_IMAGE:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    main()
