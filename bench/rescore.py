"""Rescoring from stored embeddings with a new prompt set: no image decoded, no image encoded.

1. Scores and decisions for N embeddings (default 1,000,000), in memory: the product's own code
   (`ClipScorer.scores_from_embeddings` through the CLIP writer's `_results`, then `scoring.margins`
   and `DecisionRule.decide` per image) over the vector index's float16 segments, in the chunks
   `curation.rescore` uses. The prompt set's text embeddings are computed first (timed apart).
2. With `--database-url`, `curation.rescore.rescore` end to end over `--db-rows` Image rows in that
   (scratch) database: the same work plus writing FilterScores, margins and decisions, which is where
   the time goes on a database. Twice: with a new prompt set (every score, margin and FilterScore
   changes) and with new margins under the same prompt set (the calibration page's "apply": only the
   decisions that flip are written).

    .venv/bin/python bench/rescore.py --n 1000000 [--prompts v2]
    .venv/bin/python bench/rescore.py --n 0 --db-rows 20000 --database-url postgres://postgres@127.0.0.1:5432/bench_rescore

Target: 1,000,000 images rescored in <= 10 s on 2 cores. Re-encoding them instead would take about
15 hours on the same CPU (ViT-B-32 at 18 images/s, performance-anchors.md section 8).
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

TARGET_SECONDS_1M = 10.0
CPU_ENCODE_RATE = 18.0  # images/s, ViT-B-32 on 2 cores (performance-anchors.md section 8)
KEY = "ViT-B-32:none"


def setup_django(vector_dir, database_url=None):
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SCENEIMG_CLIP_PRETRAINED"] = "none"
    os.environ["SCENEIMG_VECTOR_DIR"] = str(vector_dir)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()


def unit_vectors(n, seed=0):
    rng = np.random.default_rng(seed)
    out = np.empty((n, 512), dtype=np.float16)
    for start in range(0, n, 100_000):
        x = rng.normal(size=(min(100_000, n - start), 512)).astype(np.float32)
        out[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_segment(ids, vectors, max_row_id=None):
    """The vector index's files as the index job leaves them, written directly (no ANN index, no
    content-duplicate search: rescoring reads only the segments)."""
    from curation import vector_index as vi

    folder = vi.key_dir(KEY)
    folder.mkdir(parents=True, exist_ok=True)
    ids_path, vec_path = vi._segment_paths(folder, 1)
    vi._save_npy(ids_path, ids)
    vi._save_npy(vec_path, vectors)
    vi.State(segments=[1], count=len(ids), dim=512, max_row_id=max_row_id or len(ids), version=1).write(folder)


def in_memory(n, prompts):
    from curation import runs, vector_index
    from curation.clip import get_clip_scorer
    from curation.rescore import BLOCK, _CopyWriter, score_chunk
    from curation.scoring import DecisionRule, scorer_key

    write_segment(np.arange(1, n + 1, dtype=np.int64), unit_vectors(n))
    t0 = time.perf_counter()
    scorer = get_clip_scorer("cpu", prompt_version=prompts)
    print(f"model and prompt set {prompts} loaded (text embeddings included): {time.perf_counter() - t0:.1f} s")
    rule = DecisionRule(indoor_margin=0.02)
    copier = _CopyWriter(scorer_key(scorer), scorer, rule, None, runs.Tracker())
    kept, scoring, payload, size, cpu = 0, 0.0, 0.0, 0, [0.0, 0.0]
    for ids, vectors in vector_index.iter_segments(KEY):
        for start in range(0, len(ids), BLOCK):
            t0, c0 = time.perf_counter(), time.process_time()
            scored = score_chunk(scorer, rule, ids[start:start + BLOCK], vectors[start:start + BLOCK])
            t1, c1 = time.perf_counter(), time.process_time()
            size += sum(map(len, copier.lines(scored)))
            payload += time.perf_counter() - t1
            cpu[1] += time.process_time() - c1
            cpu[0] += c1 - c0
            scoring += t1 - t0
            kept += int(scored.passed.sum())
    for label, seconds in (("scores, margins, decisions and reasons", scoring),
                           ("the same plus the COPY text Postgres is sent", scoring + payload)):
        scaled = seconds * 1_000_000 / n
        print(f"{label}: {n:,} embeddings in {seconds:.2f} s ({n / seconds:,.0f} images/s; {kept:,} kept); "
              f"for 1,000,000: {scaled:.2f} s, ratio to the {TARGET_SECONDS_1M:.0f} s target {TARGET_SECONDS_1M / scaled:.2f}")
    print(f"CPU time (all threads): scoring {cpu[0]:.2f} s, COPY text {cpu[1]:.2f} s; COPY text {size / n:.0f} bytes per image; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times above stretch with the load)")
    print(f"re-encoding {n:,} images at {CPU_ENCODE_RATE:.0f} images/s instead: {n / CPU_ENCODE_RATE / 3600:.1f} h")


def with_database(rows, prompts):
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max

    from curation import embeddings, runs
    from curation.models import Embedding, FilterScore, Image
    from curation.rescore import rescore
    from curation.scoring import DecisionRule

    call_command("migrate", verbosity=0)
    if Image.objects.count() != rows or Embedding.objects.count() != rows:
        Image.objects.all().delete()
        for start in range(0, rows, 10_000):
            Image.objects.bulk_create([
                Image(sha256=f"{i:064x}", file=f"images/{i}.jpg", thumbnail=f"thumbs/{i}.jpg", width=64, height=48,
                      format="jpeg", byte_size=1, dhash=i) for i in range(start, min(rows, start + 10_000))])
        ids = np.asarray(sorted(Image.objects.values_list("id", flat=True)), dtype=np.int64)
        embeddings.store(KEY, ids, unit_vectors(rows, seed=1))
    # The index as it stands after the CLIP run's index job; building it (its content-duplicate search
    # above all) is that job's work, not the rescore's.
    write_segment(np.asarray(sorted(Image.objects.values_list("id", flat=True)), dtype=np.int64),
                  unit_vectors(rows, seed=1), Embedding.objects.aggregate(Max("id"))["id__max"])
    FilterScore.objects.all().delete()
    earlier = "v1" if prompts != "v1" else "v2"
    rescore(runs.Tracker(), rule=DecisionRule(), prompt_version=earlier, device="cpu")  # the scores before
    for label, rule in ((f"a new prompt set ({earlier} to {prompts})", DecisionRule()),
                        (f"new margins, the same prompt set ({prompts}, indoor margin 0.02)", DecisionRule(indoor_margin=0.02))):
        t0 = time.perf_counter()
        result = rescore(runs.Tracker(), rule=rule, prompt_version=prompts, device="cpu")
        seconds = time.perf_counter() - t0
        scaled = seconds * 1_000_000 / rows
        print(f"rescore() end to end with {label}, {rows:,} images in the database: {seconds:.1f} s "
              f"({rows / seconds:,.0f} images/s; {result['kept']:,} kept); for 1,000,000 about {scaled:.0f} s, "
              f"ratio to the {TARGET_SECONDS_1M:.0f} s target {TARGET_SECONDS_1M / scaled:.3f} "
              f"({connection.vendor}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="embeddings rescored in memory (0: skip)")
    parser.add_argument("--prompts", default="v2", help="the new prompt set")
    parser.add_argument("--db-rows", type=int, default=20_000)
    parser.add_argument("--database-url", help="a scratch database for the end-to-end run (its rows are replaced)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rescore-") as tmp:
        setup_django(tmp, args.database_url)
        if args.n:
            in_memory(args.n, args.prompts)
        if args.database_url:
            with_database(args.db_rows, args.prompts)  # its own segment replaces the in-memory one


if __name__ == "__main__":
    main()
