"""The decoded-pixel budget: concurrent decodes wait so that the pixels held at once stay within it,
in arrival order, and peak memory stays under SCENEIMG_DECODE_MEMORY_MB whatever the thread count."""
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from crawl import pixel_budget
from crawl.pixel_budget import PixelBudget

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_reservations_stay_within_the_budget():
    budget = PixelBudget(100)
    holding, most = [0], [0]
    lock = threading.Lock()

    def decode():
        with budget.reserve(40):
            with lock:
                holding[0] += 1
                most[0] = max(most[0], holding[0])
            time.sleep(0.05)
            with lock:
                holding[0] -= 1

    threads = [threading.Thread(target=decode) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 2 and budget.peak == 80 and budget.reserved == 0


def test_an_image_larger_than_the_budget_runs_alone():
    budget = PixelBudget(100)
    with budget.reserve(30):
        big = threading.Thread(target=lambda: budget.acquire(500))
        big.start()
        big.join(0.2)
        assert big.is_alive()  # waits for the 30 to be given back
    big.join(2)
    assert not big.is_alive() and budget.reserved == 100


def test_a_large_image_is_not_starved_by_small_ones():
    budget = PixelBudget(100)
    order = []
    first = budget.acquire(60)
    big = threading.Thread(target=lambda: (budget.acquire(80), order.append("big"), budget.release(80)))
    big.start()
    time.sleep(0.1)
    # 30 would fit beside the 60 held, but the 80 came first: it waits its turn.
    small = threading.Thread(target=lambda: (budget.acquire(30), order.append("small"), budget.release(30)))
    small.start()
    time.sleep(0.1)
    assert order == []
    budget.release(first)
    big.join(2), small.join(2)
    assert order == ["big", "small"]


def test_a_failed_decode_gives_its_pixels_back():
    budget = PixelBudget(100)
    with pytest.raises(ValueError):
        with budget.reserve(70):
            raise ValueError("corrupt")
    assert budget.reserved == 0


def test_declared_pixels_reads_the_header_only():
    buf = io.BytesIO()
    Image.new("L", (8000, 7999)).save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000
    assert pixel_budget.declared_pixels(buf.getvalue()) == 8000 * 7999
    assert pixel_budget.declared_pixels(b"not an image") == 0


def test_the_budget_follows_the_setting(settings):
    settings.SCENEIMG_DECODE_MEMORY_MB = 120
    assert pixel_budget.budget().capacity == 120 * 2**20 // pixel_budget.BYTES_PER_PIXEL


def test_default_pixel_limit_suits_scene_photos(settings):
    from crawl import default_settings

    assert default_settings.SCENEIMG_MAX_PIXELS <= 40_000_000
    # One image at the limit fits in the default budget.
    assert default_settings.SCENEIMG_MAX_PIXELS * pixel_budget.BYTES_PER_PIXEL <= \
        default_settings.SCENEIMG_DECODE_MEMORY_MB * 2**20


def peak(worker_env, threads, memory_mb, width=5000, height=4000):
    out = subprocess.run([sys.executable, "-m", "tests.faults.decode_memory", str(threads), str(width), str(height),
                          str(memory_mb)], cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_stays_under_the_setting_whatever_the_thread_count(worker_env):
    """8 threads on 20 MP PNGs of a few hundred KB: without the budget they hold about 8 images at once;
    with 300 MB they hold one (20 MP x 12 bytes = 240 MB reserved), and peak memory follows."""
    unbounded = peak(worker_env, 8, 0)
    bounded = peak(worker_env, 8, 300)
    assert bounded["budget_peak_pixels"] == 5000 * 4000
    assert bounded["extra_mb"] < 300, bounded
    assert unbounded["extra_mb"] > 2 * bounded["extra_mb"], (unbounded, bounded)
