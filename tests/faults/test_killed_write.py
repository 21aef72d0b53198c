"""A picture's file is never seen half-written: a writer SIGKILLed midway leaves no file under the
picture's name (only a temporary one, which check_storage reports), and the next store writes it whole."""
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from curation.storage import PARTIAL_PREFIX, save_once

ROOT = Path(__file__).resolve().parents[2]
NAME = "images/ab/cd/abcd-killed.jpg"
SIZE = 200_000_000  # long enough to write that the kill lands in the middle


def files_in(folder):
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


@pytest.mark.django_db
def test_a_writer_killed_midway_leaves_no_partial_file_under_the_name(worker_env, settings):
    folder = Path(settings.MEDIA_ROOT) / os.path.dirname(NAME)
    code = ("import django; django.setup(); from curation.storage import save_once; "
            f"save_once({NAME!r}, b'x' * {SIZE})")
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=worker_env)
    deadline = time.monotonic() + 60
    while writer.poll() is None and time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in files_in(folder)):
            writer.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    assert not default_storage.exists(NAME) or (folder / os.path.basename(NAME)).stat().st_size == SIZE
    assert [p.name.startswith(PARTIAL_PREFIX) for p in files_in(folder)] == [True]  # the killed write's
    report = StringIO()
    call_command("check_storage", "--min-age", "0", stdout=report)
    assert report.getvalue().startswith(f"no row: {os.path.dirname(NAME)}/{PARTIAL_PREFIX}")
    assert "\n1 file(s) without a row" in report.getvalue()

    save_once(NAME, b"y" * 1000)  # a later store of the name writes it whole
    with default_storage.open(NAME, "rb") as f:
        assert f.read() == b"y" * 1000


def test_writers_of_one_name_at_once_leave_one_whole_readable_file(settings):
    data = os.urandom(2_000_000)
    threads = [threading.Thread(target=save_once, args=("images/ef/01/same.jpg", data)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    folder = Path(settings.MEDIA_ROOT) / "images/ef/01"
    assert [p.name for p in files_in(folder)] == ["same.jpg"]  # no temporary file left, no renamed copy
    assert (folder / "same.jpg").read_bytes() == data
    assert stat.S_IMODE((folder / "same.jpg").stat().st_mode) == (settings.FILE_UPLOAD_PERMISSIONS or 0o644)


def test_a_failed_write_removes_its_temporary_file(settings, monkeypatch):
    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError, match="No space"):
        save_once("images/12/34/full.jpg", b"z" * 100)
    assert files_in(Path(settings.MEDIA_ROOT) / "images/12/34") == []
