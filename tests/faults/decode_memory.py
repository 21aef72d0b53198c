"""Peak memory of N threads decoding large, small-file PNGs through ingest, with or without the pixel
budget. Run in a child process (peak RSS is per process): prints one JSON line.

    python -m tests.faults.decode_memory THREADS WIDTH HEIGHT MEMORY_MB   (MEMORY_MB 0: no budget)
"""
import io
import json
import os
import sys
import threading
from contextlib import nullcontext


def high_water_kb():
    """This process's peak resident memory. Not ru_maxrss: Linux carries that across exec, so a child of
    a large test process would start at its parent's peak; VmHWM belongs to this process's memory alone."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def main(threads, width, height, memory_mb):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.test_settings")
    import django

    django.setup()
    from django.conf import settings
    from PIL import Image

    from crawl import ingest, pixel_budget

    settings.SCENEIMG_MAX_PIXELS = width * height
    settings.SCENEIMG_DECODE_MEMORY_MB = memory_mb or 1
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(buf, "PNG")
    data = buf.getvalue()  # a few hundred KB that decode to width x height x 3 bytes
    base = high_water_kb()
    start = threading.Barrier(threads)

    def one():
        start.wait()
        guard = pixel_budget.reserve(pixel_budget.declared_pixels(data)) if memory_mb else nullcontext()
        with guard:
            im = ingest.decode(data)
            normalised = ingest.normalise(data, im)
            ingest.compute_dhash(normalised.image)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    peak = high_water_kb()
    print(json.dumps({"file_bytes": len(data), "base_mb": base / 1024, "peak_mb": peak / 1024,
                      "extra_mb": (peak - base) / 1024, "budget_peak_pixels": pixel_budget.budget().peak}))


if __name__ == "__main__":
    main(*map(int, sys.argv[1:5]))
