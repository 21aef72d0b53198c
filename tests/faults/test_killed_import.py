"""A folder import SIGKILLed at random points, several times over, then run to the end: every picture has
one Image with a Source, no Source claims its own image as an earlier copy, and after check_storage
--fix nothing in storage lacks a row and no row lacks its files."""
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from crawl.models import Source
from curation.models import Image
from tests.factories import picture_bytes

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
PICTURES = 200  # several import batches, so a kill can land between two of them


def check_storage(*args):
    out = StringIO()
    call_command("check_storage", "--min-age", "0", *args, stdout=out)
    return out.getvalue()


def start_import(folder, env):
    # One process, one thread: slow enough that a kill lands between a picture's file and its row.
    return subprocess.Popen([sys.executable, "manage.py", "import_folder", str(folder), "--processes", "1",
                             "--workers", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stored_files(media_root):
    return sum(len(files) for _, _, files in os.walk(Path(media_root) / "images"))


def kill_when(proc, ready, delay, timeout=60):
    """SIGKILL the import `delay` seconds after `ready()` holds (or when it ends by itself)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_an_import_killed_at_random_points_leaves_rows_and_storage_in_step(tmp_path, worker_env, settings):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for n in range(PICTURES):
        (folder / f"{n:03d}.jpg").write_bytes(picture_bytes(9000 + n, 640, 480))
    rng = random.Random(17)
    media = settings.MEDIA_ROOT
    for round_ in range(5):
        # Files are written before their rows: kill as new files appear (the moment that strands files),
        # or once new rows appear; each after a random delay.
        if round_ % 2 == 0:
            ready = partial(lambda before: stored_files(media) > before, stored_files(media))
        else:
            ready = partial(lambda before: Image.objects.count() > before, Image.objects.count())
        kill_when(start_import(folder, worker_env), ready, rng.uniform(0, 0.3))
    assert Image.objects.count() < PICTURES  # the kills did land mid-import

    finish = subprocess.run([sys.executable, "manage.py", "import_folder", str(folder), "--processes", "1"],
                            cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr[-2000:]

    assert Image.objects.count() == PICTURES
    assert not Image.objects.filter(sources__isnull=True).exists()  # every Image came with its Source
    for image_id, reason in Source.objects.filter(image__isnull=False).values_list("image_id", "reason"):
        assert reason != f"same picture as #{image_id}"
    assert "0 row(s) without their files" in check_storage("--fix")
    assert check_storage().startswith("0 file(s) without a row")
