"""VLM judge throughput against the loopback fake: verdicts per second for --workers 1 to 64.

The fake answers every request after a fixed latency (500 ms by default), so the ceiling is
workers / latency; what the figure measures is our overhead on top: threads, the official client,
image downscaling, batched upserts and decisions. Every point also checks that no verdict was lost
or written twice. Anchor: 120 verdicts/s with 64 workers on 2 cores, for 640x480 and 1600x1200
images alike. The CPU per verdict is this process's (the fake runs in its own): the evidence that
holds when a shared machine's load hides the rate. With 64 workers among the points it then times the
official client alone on one prepared picture, no database: the ceiling this machine allows the stage.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/vlm_throughput.py
    .venv/bin/python bench/vlm_throughput.py --workers 1,8,64 --latency 0.5 --backend ollama-local

It runs in a throwaway test database (SCENEIMG_TEST_DB, default bench_vlm) and a temporary media folder.
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
os.environ.setdefault("SCENEIMG_TEST_DB", "bench_vlm")

ANCHOR_WORKERS = 64
ANCHOR_RATE = 120.0  # verdicts/s: 94% of the 128/s ceiling of 64 requests at 500 ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4,8,16,32,64", help="comma-separated worker counts")
    parser.add_argument("--latency", type=float, default=0.5, help="fake reply latency in seconds")
    parser.add_argument("--rounds", type=int, default=12, help="images per point = workers x rounds (min 12)")
    parser.add_argument("--backend", default="openai", choices=("openai", "ollama-local"))
    parser.add_argument("--image-size", default="640x480",
                        help="stored image size; above SCENEIMG_VLM_IMAGE_SIDE (768) each one is downscaled before sending")
    parser.add_argument("--in-process", action="store_true",
                        help="run the fake inside this process (it then competes for our GIL)")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="vlm-bench-media-")
    settings.LOGGING_CONFIG = None
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        return run(args, worker_counts)
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(old_config, verbosity=0)


def run(args, worker_counts):
    from django.conf import settings

    from curation import runs
    from curation.models import Run
    from tests.factories import stored_image
    from vlm import judge
    from vlm.judge import judge_images
    from vlm.models import VlmVerdict
    from vlm.prompts import latest_version, sync_prompts

    sync_prompts()
    version = latest_version("v3")
    n_max = max(max(w * args.rounds, 12) for w in worker_counts)
    t0 = time.perf_counter()
    w, h = (int(v) for v in args.image_size.split("x"))
    images = [stored_image(i, width=w, height=h).pk for i in range(n_max)]
    print(f"{n_max} stored {w}x{h} images in {time.perf_counter() - t0:.1f}s; fake latency {args.latency * 1000:.0f} ms; "
          f"backend {args.backend}; {os.cpu_count()} CPUs")

    fake = Fake(args.backend, args.latency, args.in_process)
    settings.SCENEIMG_OPENAI_BASE_URL = fake.base_url
    settings.SCENEIMG_OPENAI_API_KEY = "sk-bench"
    settings.SCENEIMG_OLLAMA_HOST = fake.base_url
    settings.SCENEIMG_VLM_RETRIES = 0  # a failure must show, not be hidden by a retry
    jpeg = _warm_up(args.backend, images[0])
    results, ok, alone = [], True, None
    done_at = _record_completions(judge._Writer)
    try:
        print(f"{'workers':>7} {'images':>6} {'seconds':>8} {'verdicts/s':>10} {'ceiling':>8} "
              f"{'of ceiling':>10} {'steady':>7} {'first/after last':>16} {'cpu ms/verdict':>14} {'call ms p50/p95':>15} {'load':>5}  check")
        for workers in worker_counts:
            n = max(workers * args.rounds, 12)
            ids = images[:n]
            model = f"bench-w{workers}"
            before = fake.requests()
            done_at.clear()
            start, cpu_start, started = time.perf_counter(), time.process_time(), time.monotonic()
            run = runs.run_in_foreground(
                Run.Kind.VLM,
                lambda t, ids=ids, model=model, workers=workers: judge_images(
                    t, image_ids=ids, prompt_version_id=version.pk, backend=args.backend, model=model,
                    workers=workers, timeout=30),
                {"bench": model},
            )
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            load = os.getloadavg()[0]
            rows = VlmVerdict.objects.filter(model=model, backend=args.backend)
            stored = rows.filter(error="").count()
            distinct = rows.values("image_id").distinct().count()
            asked = fake.requests() - before
            latencies = sorted(rows.exclude(latency_ms=None).values_list("latency_ms", flat=True))
            good = stored == n and distinct == n and rows.count() == n and asked == n and run.status == "done"
            ok &= good
            rate = n / elapsed
            steady = _steady_rate(done_at)
            first = min(done_at) - started if done_at else float("nan")
            last = elapsed - (max(done_at) - started) if done_at else float("nan")
            ceiling = workers / args.latency if args.latency else float("inf")
            results.append((workers, rate, steady))
            check = "ok" if good else f"LOST/DUPLICATED: stored {stored}, distinct {distinct}, requests {asked}"
            print(f"{workers:>7} {n:>6} {elapsed:>8.2f} {rate:>10.1f} {ceiling:>8.0f} {rate / ceiling:>9.0%} "
                  f"{steady:>7.1f} {f'{first:.2f}/{last:.2f} s':>16} {cpu / n * 1000:>14.1f} {_percentiles(latencies):>15} {load:>5.1f}  {check}")
        if ANCHOR_WORKERS in worker_counts:
            alone = _client_alone(args.backend, jpeg, ANCHOR_WORKERS, max(ANCHOR_WORKERS * args.rounds, 12))
    finally:
        fake.stop()
    for workers, whole, steady in results:
        if workers == ANCHOR_WORKERS:
            for label, figure in (("whole run", whole), ("steady", steady)):
                print(f"figure ({label}): {figure:.1f} verdicts/s at {ANCHOR_WORKERS} workers; "
                      f"anchor {ANCHOR_RATE:.0f}/s; ratio {figure / ANCHOR_RATE:.2f}x "
                      f"({'meets' if figure >= ANCHOR_RATE else 'BELOW'} target)")
            if alone:
                print(f"the client alone (one prepared picture, no database): {alone:.1f} calls/s at {ANCHOR_WORKERS} "
                      f"at once, this machine's ceiling for the stage; the whole run is {whole / alone:.2f} of it")
    print("every verdict stored exactly once" if ok else "VERDICTS LOST OR DUPLICATED")
    return 0 if ok else 1


def _warm_up(backend, image_id):
    """One call before any point is timed: a process's first call pays one-off costs (the fake's lazy
    imports, the client's), about 0.4 s that `--workers 64` alone would otherwise count against its
    768 verdicts, and that a point after others never pays."""
    from curation.models import Image
    from vlm import backends
    from vlm.model_input import prepare_image

    image = Image.objects.get(pk=image_id)
    with image.file.open("rb") as fh:
        jpeg, _ = prepare_image(fh.read())
    client = backends.make_backend(backend, "bench-warm-up", timeout=30)
    try:
        client.call("Warm-up.", "Judge this image.", jpeg)
    finally:
        client.close()
    return jpeg


def _client_alone(backend, jpeg, workers, n):
    """Calls/s of the official client asking about one prepared picture `n` times, `workers` at once, with
    no database and no picture work: on a small machine the client's own CPU per call, not the fake's
    latency, is the stage's ceiling (2 cores: 116 to 121/s against the 128/s of 64 calls at 500 ms)."""
    from concurrent.futures import ThreadPoolExecutor

    from vlm import backends

    client = backends.make_backend(backend, "bench-client-alone", timeout=30)
    try:
        client.call("Warm-up.", "Judge this image.", jpeg)
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: client.call("Judge.", "Judge this image.", jpeg), range(n)))
        return n / (time.perf_counter() - start)
    finally:
        client.close()


def _record_completions(writer_class):
    """The time each outcome reaches the stage's writer (instrumentation of this process only)."""
    times, add = [], writer_class.add

    def timed_add(self, outcome):
        times.append(time.monotonic())
        return add(self, outcome)

    writer_class.add = timed_add
    return times


def _steady_rate(times):
    """Verdicts/s between the 10th and 90th percentile completions: the rate once every worker is busy,
    without the start (all workers' first calls at once, the run's own setup) or the last partial round."""
    if len(times) < 20:
        return float("nan")
    times = sorted(times)
    first, last = times[len(times) // 10], times[len(times) * 9 // 10]
    return (len(times) * 9 // 10 - len(times) // 10) / (last - first) if last > first else float("nan")


def _percentiles(values):
    """p50/p95 of the calls' own latency (request sent to reply read): what the fake's delay became
    on the way, as against the time between calls that the rate also pays."""
    if not values:
        return "-"
    return f"{values[len(values) // 2]}/{values[int(len(values) * 0.95)]}"


class Fake:
    """The fake server, by default in its own process as a real service would be."""

    def __init__(self, backend, latency, in_process):
        module = "tests.fakes.openai_responses" if backend == "openai" else "tests.fakes.ollama"
        self.proc = self.fake = None
        if in_process:
            from tests.fakes.ollama import FakeOllama
            from tests.fakes.openai_responses import FakeOpenAI

            self.fake = (FakeOpenAI if backend == "openai" else FakeOllama)("valid", latency=latency)
            self.fake.start()
            self.base_url = self.fake.base_url
            return
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", module, "0", "--latency", str(latency)],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "FakeOpenAI serving at http://127.0.0.1:PORT/v1 (...)"
        self.base_url = line.split(" serving at ")[1].split()[0]

    def requests(self):
        if self.fake is not None:
            return len(self.fake.requests)
        import json
        import urllib.parse
        import urllib.request

        root = urllib.parse.urlsplit(self.base_url)._replace(path="").geturl()
        with urllib.request.urlopen(f"{root}/_fake/stats", timeout=10) as r:
            return json.load(r)["requests"]

    def stop(self):
        if self.fake is not None:
            self.fake.stop()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
