"""A budget on decoded pixels per process, so memory stays bounded whatever the number of threads.

A small file can declare a huge image (a 40 KB PNG of 8000 x 8000 decodes to 192 MB), and a crawl
decodes in --workers threads at once. Each decode reserves its declared width x height here first and
waits while the pixels already reserved plus its own would pass the budget:

    with pixel_budget.reserve(pixel_budget.declared_pixels(data)):
        im = decode(data)  # ... and everything that keeps `im` alive: normalise, thumbnail, dHash

Waiters are served in arrival order, so a large image is not starved by a stream of small ones. An
image larger than the whole budget waits until nothing else is reserved and then runs alone.
Not re-entrant: a thread must not reserve twice at once (it could wait for itself).
"""
import io
import threading
from collections import deque
from contextlib import contextmanager

from django.conf import settings
from PIL import Image as PILImage

# What one declared pixel costs while an image goes through ingest: the decoded image (up to 4 bytes
# a pixel), a converted or turned copy, and the grey copy for the dHash. Measured by
# tests/faults/test_pixel_budget.py; generous on purpose.
BYTES_PER_PIXEL = 12


class PixelBudget:
    def __init__(self, capacity):
        self.capacity = max(int(capacity), 1)
        self.reserved = 0
        self.peak = 0  # the most pixels reserved at once, for tests and benchmarks
        self._cond = threading.Condition()
        self._queue = deque()

    def acquire(self, pixels):
        pixels = min(max(int(pixels), 0), self.capacity)
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                self._cond.wait_for(lambda: self._queue[0] is ticket
                                    and self.reserved + pixels <= self.capacity)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
            self.reserved += pixels
            self.peak = max(self.peak, self.reserved)
        return pixels

    def release(self, pixels):
        with self._cond:
            self.reserved -= pixels
            self._cond.notify_all()

    @contextmanager
    def reserve(self, pixels):
        held = self.acquire(pixels)
        try:
            yield held
        finally:
            self.release(held)


_lock = threading.Lock()
_budget = None


def budget():
    """The process's budget, sized from SCENEIMG_DECODE_MEMORY_MB (rebuilt if the setting changes)."""
    global _budget
    capacity = settings.SCENEIMG_DECODE_MEMORY_MB * 2**20 // BYTES_PER_PIXEL
    with _lock:
        if _budget is None or _budget.capacity != max(capacity, 1):
            _budget = PixelBudget(capacity)
        return _budget


def reserve(pixels):
    return budget().reserve(pixels)


def declared_pixels(data):
    """Width x height from the image header, without decoding; 0 when it cannot be read (the decode
    that follows refuses such bytes anyway)."""
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Exception:  # any unreadable header: not our business to say why
        return 0
    return max(width, 0) * max(height, 0)
