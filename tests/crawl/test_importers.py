"""Folder and URL-list imports: metadata from the original scripts, dry runs, idempotency, summaries."""
import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from crawl.models import Source
from curation.models import Image, Run
from tests.fakes.image_host import ImageHost
from tests.images import encode, photo_like

pytestmark = pytest.mark.django_db


def write_folder(folder, seeds, with_metadata=False):
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"img_{seed}.jpg").write_bytes(encode(photo_like(500, 400, seed), "JPEG"))
    if with_metadata:
        (folder / f"img_{seeds[0]}.json").write_text(json.dumps(
            {"url": "https://example.com/a.jpg", "query": "杂乱的客厅", "title": "客厅", "page_url": "https://example.com/p"}))
        (folder / "_global_index.jsonl").write_text(
            json.dumps({"path": f"img_{seeds[1]}.jpg", "url": "https://example.com/b.jpg", "seed": "seed1.jpg"})
            + "\nnot json\n")
    return folder


def run_command(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_import_folder_records_original_metadata(tmp_path):
    folder = write_folder(tmp_path / "raw", [1, 2, 3], with_metadata=True)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert run_command("import_folder", str(folder), "--label", "old") == "stored 3, duplicate 0, invalid 1, error 0"
    src = Source.objects.get(path__endswith="img_1.jpg")
    assert (src.provider, src.url, src.query, src.title) == ("baidu", "https://example.com/a.jpg", "杂乱的客厅", "客厅")
    src2 = Source.objects.get(path__endswith="img_2.jpg")
    assert (src2.provider, src2.seed_name) == ("baidu_similar", "seed1.jpg")
    assert Source.objects.get(path__endswith="img_3.jpg").provider == "folder"
    assert Run.objects.get().label == "old"


def test_import_folder_twice_changes_nothing(tmp_path):
    folder = write_folder(tmp_path / "raw", [4, 5])
    run_command("import_folder", str(folder))
    images = list(Image.objects.values_list("sha256", "file"))
    assert run_command("import_folder", str(folder)) == "stored 0, duplicate 2, invalid 0, error 0"
    assert list(Image.objects.values_list("sha256", "file")) == images


def test_dry_run_changes_nothing(tmp_path):
    folder = write_folder(tmp_path / "raw", [6, 7])
    (folder / "copy.jpg").write_bytes((folder / "img_6.jpg").read_bytes())
    line = run_command("import_folder", str(folder), "--dry-run")
    assert line == "dry run, nothing changed: would have stored 2, duplicate 1, invalid 0, error 0"
    assert (Image.objects.count(), Source.objects.count(), Run.objects.count()) == (0, 0, 0)


def test_recursive(tmp_path):
    write_folder(tmp_path / "raw" / "sub", [8])
    write_folder(tmp_path / "raw", [9])
    assert run_command("import_folder", str(tmp_path / "raw")).startswith("stored 1,")
    assert run_command("import_folder", str(tmp_path / "raw"), "--recursive").startswith("stored 1, duplicate 1")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("import_folder", str(tmp_path / "nope"))


@pytest.mark.django_db(transaction=True)
def test_import_urls_plain_and_jsonl(tmp_path, settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with ImageHost() as host:
        lines = [host.url("/img/1.jpg"), host.url("/dup/1.jpg"), host.url("/broken/2.jpg"),
                 json.dumps({"url": host.url("/img/3.jpg"), "page_url": "https://p/3", "title": "<b>t</b>"}),
                 '{"url": ', host.url("/status/500"), host.url("/html/4.jpg")]
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(lines))
        settings.SCENEIMG_FETCH_RETRIES = 0
        line = run_command("import_urls", str(listing), "--label", "l1")
        assert line == "stored 2, duplicate 1, invalid 3, error 1"
        src = Source.objects.get(url=host.url("/img/3.jpg"))
        assert (src.page_url, src.title, src.outcome) == ("https://p/3", "<b>t</b>", "stored")
        assert Source.objects.get(url=host.url("/status/500")).reason.startswith("HTTP 500")
        assert "not valid JSON" in Source.objects.get(outcome="invalid", url="").reason
        # A second import of the same list skips known URLs before downloading them.
        hits = dict(host.hits)
        line = run_command("import_urls", str(listing))
        assert line.startswith("stored 0, duplicate 3")
        assert host.hits["/img/1.jpg"] == hits["/img/1.jpg"]


@pytest.mark.django_db(transaction=True)
def test_two_processes_importing_overlapping_folders_make_one_image_per_picture(tmp_path, worker_env):
    a = write_folder(tmp_path / "a", list(range(10, 22)))
    b = write_folder(tmp_path / "b", list(range(16, 28)))
    cmd = [sys.executable, "manage.py", "import_folder"]
    procs = [subprocess.Popen(cmd + [str(f)], env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for f in (a, b)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert Image.objects.count() == 18
    assert Source.objects.count() == 24
    assert Source.objects.filter(outcome="stored").count() == 18


def test_dry_run_cannot_be_enqueued(tmp_path):
    folder = write_folder(tmp_path / "raw", [30])
    with pytest.raises(CommandError, match="cannot be combined"):
        call_command("import_folder", str(folder), "--dry-run", "--enqueue")
    assert (Image.objects.count(), Run.objects.count()) == (0, 0)
