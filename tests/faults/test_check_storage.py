"""check_storage: files in storage without an Image row (a worker killed between writing the file and
the row), and rows whose file is gone. --fix removes the files, never a row."""
import os
import time
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from tests.factories import stored_image

pytestmark = pytest.mark.django_db


def put(name, age_seconds):
    name = default_storage.save(name, ContentFile(b"\xff\xd8 not a real picture \xff\xd9"))
    stamp = time.time() - age_seconds
    os.utime(default_storage.path(name), (stamp, stamp))
    return name


@pytest.fixture
def scene():
    kept = stored_image(1)
    lost_file = stored_image(2)
    default_storage.delete(lost_file.file.name)
    lost_thumb = stored_image(3)
    default_storage.delete(lost_thumb.thumbnail.name)
    return {
        "kept": kept, "lost_file": lost_file, "lost_thumb": lost_thumb,
        "old_orphan": put("images/aa/bb/" + "a" * 64 + ".jpg", 7200),
        "old_thumb_orphan": put("thumbs/aa/bb/" + "a" * 64 + ".jpg", 7200),
        "new_orphan": put("images/cc/dd/" + "c" * 64 + ".jpg", 10),  # maybe a worker writing it right now
    }


def run(*args):
    out = StringIO()
    call_command("check_storage", *args, stdout=out)
    return out.getvalue()


def test_reports_without_changing_anything(scene):
    out = run()
    assert scene["old_orphan"] in out and scene["old_thumb_orphan"] in out and scene["new_orphan"] in out
    assert f"#{scene['lost_file'].pk}" in out and f"#{scene['lost_thumb'].pk}" in out
    assert f"#{scene['kept'].pk}" not in out
    assert "3 file(s) without a row" in out and "2 row(s) without their files" in out
    for name in ("old_orphan", "old_thumb_orphan", "new_orphan"):
        assert default_storage.exists(scene[name])


def test_fix_removes_old_orphan_files_only(scene):
    out = run("--fix")
    assert not default_storage.exists(scene["old_orphan"])
    assert not default_storage.exists(scene["old_thumb_orphan"])
    assert default_storage.exists(scene["new_orphan"])  # younger than --min-age: left alone
    assert default_storage.exists(scene["kept"].file.name) and default_storage.exists(scene["kept"].thumbnail.name)
    assert "removed 2" in out
    from curation.models import Image

    assert Image.objects.count() == 3  # rows are reported, never deleted


def test_min_age_flag(scene):
    run("--fix", "--min-age", "0")
    assert not default_storage.exists(scene["new_orphan"])


def test_a_worker_killed_between_file_and_row_leaves_a_file_that_fix_removes():
    from crawl import ingest
    from tests.images import encode, photo_like

    # Files are written before the rows' transaction: a worker killed in between leaves just these.
    ingest.prepare(encode(photo_like(400, 300, 5), "JPEG", quality=90))
    assert "2 file(s) without a row" in run()  # the image and its thumbnail
    run("--fix", "--min-age", "0")
    assert "0 file(s) without a row" in run()


def test_exit_status_for_monitoring(scene):
    with pytest.raises(CommandError, match="inconsistent"):
        call_command("check_storage", "--strict", stdout=StringIO())
