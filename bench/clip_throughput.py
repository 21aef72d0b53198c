"""CLIP filter throughput: end to end (JPEG files on disk -> FilterScore rows) against model-only.

Writes N synthetic photo-like JPEGs (default 1024x768, ~like the anchor's) into a temporary media
folder, creates their Image rows in a temporary SQLite database (or --database-url), then measures
in one process:

  model-only   ViT-B-32 image tower + prompt similarities on a batch already in memory
  end to end   curation.scoring.score_images: read, decode (Pillow draft on the CPU, nvJPEG on
               CUDA), preprocess, infer, upsert FilterScores, update Images

and prints images/s for both and their ratio, which compares like with like (same process, same
threads). On the CPU torch runs SCENEIMG_TORCH_THREADS threads, by default 2 here (--threads), the
thread count of the CPU anchor; other counts are labelled as not comparable with it.
  CPU: target end to end >= 80% of model-only; anchor: ViT-B-32 image tower alone, 18 img/s on
       2 threads (performance-anchors.md section 8).
  CUDA: target end to end >= 5,000 img/s on one H100; anchor 4,639 img/s, GPU decode + ViT-B-32
       fp16 from bytes in memory (performance-anchors.md section 7).

    .venv/bin/python bench/clip_throughput.py                       # CPU, 320 images, 2 threads
    .venv/bin/python bench/clip_throughput.py --device cuda --n 16384 --batch-size 512

Weights are random (SCENEIMG_CLIP_PRETRAINED=none unless set): same cost, meaningless scores.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CPU_RATIO_TARGET = 0.80  # end to end / model-only on the CPU
CPU_MODEL_ANCHOR = 18.0  # img/s, ViT-B-32 image tower alone, batch 32
CPU_ANCHOR_THREADS = 2  # the thread count CPU_MODEL_ANCHOR was measured with
GPU_E2E_TARGET = 5000.0  # img/s end to end on one H100
GPU_E2E_ANCHOR = 4639.0  # img/s, GPU decode + ViT-B-32 fp16 from bytes in memory


def setup_django(tmp, database_url):
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DEBUG", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "sceneimg_site.settings"
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(tmp / "media")
    os.environ.setdefault("SCENEIMG_CLIP_PRETRAINED", "none")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_images(n, width, height, unique=64):
    """n Image rows over `unique` distinct pictures (decode cost is what matters, not variety)."""
    import hashlib

    from django.conf import settings

    from curation.models import Image
    from tests.images import encode, photo_like

    media = Path(settings.MEDIA_ROOT)
    (media / "images").mkdir(parents=True, exist_ok=True)
    import numpy as np
    from PIL import Image as PILImage

    def noisy(seed):
        # Sensor-like noise makes the JPEGs ~130 KB at 1024x768, like the anchor's, not ~35 KB of flat blocks.
        arr = np.asarray(photo_like(width, height, seed), dtype=np.int16)
        arr = arr + np.random.default_rng(seed).normal(0, 5, arr.shape).astype(np.int16)
        return PILImage.fromarray(arr.clip(0, 255).astype(np.uint8))

    blobs = [encode(noisy(seed), "JPEG", quality=90) for seed in range(min(unique, n))]
    rows = []
    for i in range(n):
        data = blobs[i % len(blobs)]
        sha = hashlib.sha256(data + i.to_bytes(8, "little")).hexdigest()
        name = f"images/{sha}.jpg"
        (media / name).write_bytes(data)
        rows.append(Image(sha256=sha, file=name, thumbnail=name, width=width, height=height, format="jpeg",
                          byte_size=len(data), dhash=i))
    Image.objects.bulk_create(rows, batch_size=2000)
    return list(Image.objects.order_by("id").values_list("id", flat=True)), sum(map(len, blobs)) / len(blobs)


def model_only(scorer, batch_size, n):
    """img/s of the model alone on about n images, in batches already on the device."""
    import torch

    x = torch.randint(0, 256, (batch_size, 3, scorer.image_size, scorer.image_size), dtype=torch.uint8)
    x = x.to(scorer.device)
    done, start = 0, time.perf_counter()
    while done < n:
        scorer.score(x)  # .cpu() inside synchronises CUDA
        done += batch_size
    return done / (time.perf_counter() - start)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="images end to end (default 320 CPU, 16384 CUDA)")
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=CPU_ANCHOR_THREADS,
                    help=f"torch threads on the CPU (default {CPU_ANCHOR_THREADS}, the CPU anchor's)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating model-only / end-to-end rounds")
    ap.add_argument("--database-url", default=None, help="default: a temporary SQLite database")
    return ap.parse_args()


def alternate(scorer, ids, rounds, device, batch):
    """Alternating model-only and end-to-end rounds of equal size; the machine may be shared and its
    load may move, so both see the same conditions. Returns (model img/s, e2e img/s, e2e images,
    e2e seconds, per-round ratios)."""
    from curation import runs
    from curation.scoring import DecisionRule, score_images

    model_time = e2e_time = 0.0
    done = 0
    per_round = []
    for chunk in [ids[i::rounds] for i in range(rounds)]:
        m_rate = model_only(scorer, batch, len(chunk))
        t0 = time.perf_counter()
        score_images(runs.Tracker(), sorted(chunk), rule=DecisionRule(), device=device, batch_size=batch)
        elapsed = time.perf_counter() - t0
        per_round.append(len(chunk) / elapsed / m_rate)
        model_time += len(chunk) / m_rate
        e2e_time += elapsed
        done += len(chunk)
    return done / model_time, done / e2e_time, done, e2e_time, per_round


def report(model_rate, e2e_rate, done, seconds, written, per_round, gpu, threads):
    print(f"model-only  : {model_rate:9.1f} img/s")
    print(f"end to end  : {e2e_rate:9.1f} img/s ({done} images in {seconds:.2f} s, {written} FilterScores)")
    print("per-round ratios: " + ", ".join(f"{r:.2f}" for r in per_round))
    print(f"end-to-end / model-only = {e2e_rate / model_rate:.2f} (target >= {CPU_RATIO_TARGET:.2f} on the CPU)")
    if gpu:
        print(f"end to end vs target {GPU_E2E_TARGET:.0f} img/s on one H100: {e2e_rate / GPU_E2E_TARGET:.2f}x; "
              f"vs anchor {GPU_E2E_ANCHOR:.0f} img/s (GPU decode + fp16, bytes in memory): "
              f"{e2e_rate / GPU_E2E_ANCHOR:.2f}x")
    elif threads == CPU_ANCHOR_THREADS:
        print(f"model-only vs anchor {CPU_MODEL_ANCHOR:.0f} img/s ({CPU_ANCHOR_THREADS} threads, as here): "
              f"{model_rate / CPU_MODEL_ANCHOR:.2f}x; end to end vs anchor: {e2e_rate / CPU_MODEL_ANCHOR:.2f}x")
    else:
        print(f"no ratio to the CPU anchor: it ran on {CPU_ANCHOR_THREADS} threads, this on {threads} "
              f"(--threads {CPU_ANCHOR_THREADS} to compare)")


def main():
    args = parse_args()
    os.environ["SCENEIMG_TORCH_THREADS"] = str(args.threads)  # read by curation.clip.configure_cpu_threads
    with tempfile.TemporaryDirectory(prefix="sceneimg-bench-") as tmpdir:
        setup_django(Path(tmpdir), args.database_url)
        import torch

        from curation import runs
        from curation.clip import get_clip_scorer, resolve_device
        from curation.models import FilterScore
        from curation.scoring import DecisionRule, default_batch_size, score_images

        device = resolve_device(args.device)
        gpu = device.startswith("cuda")
        n = args.n or (16384 if gpu else 320)
        batch = args.batch_size or default_batch_size(device)
        w, h = (int(v) for v in args.size.lower().split("x"))
        t0 = time.perf_counter()
        ids, avg_bytes = make_images(n, w, h)
        print(f"prepared {n} JPEGs {w}x{h} (~{avg_bytes / 1024:.0f} KB) in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        scorer = get_clip_scorer(device)
        where = torch.cuda.get_device_name() if gpu else f"{torch.get_num_threads()} threads"
        print(f"model {scorer.key} on {device} ({where}), loaded in {time.perf_counter() - t0:.1f} s, batch {batch}")
        # Warm the whole pipeline (allocator, nvJPEG handles, database) on one batch first.
        score_images(runs.Tracker(), ids[:batch], rule=DecisionRule(), device=device, batch_size=batch)
        model_only(scorer, batch, batch)
        rest = ids[batch:] or ids
        FilterScore.objects.filter(image_id__in=rest).delete()
        model_rate, e2e_rate, done, seconds, per_round = alternate(scorer, rest, args.rounds, device, batch)
        written = FilterScore.objects.filter(image_id__in=rest).count()
        report(model_rate, e2e_rate, done, seconds, written, per_round, gpu, torch.get_num_threads())


if __name__ == "__main__":
    main()
