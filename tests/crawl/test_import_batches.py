"""URL and folder imports split into batches: a pool of processes in the foreground, RQ jobs that any
number of workers share; links leaving a folder are skipped; an output root replaced after launch."""
import io
import json
import os

import django_rq
import pytest
from django.core.management import call_command
from rq import SimpleWorker

from crawl import batches, launch
from crawl.ingest import Sighting, ingest_bytes
from crawl.models import Source
from crawl.output import OutputRootError, output_folder, write_output
from curation.models import Image, Run
from sceneimg_site import queues
from tests.fakes.image_host import ImageHost
from tests.images import encode, photo_like
from tests.workers import start_worker


def command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def url_list(path, host, names):
    path.write_text("\n".join(host.url(n) for n in names) + "\n")
    return path


def rows():
    """What an import wrote, comparable across runs: each Source by its URL, with its picture."""
    return sorted((s.url, s.rank, s.outcome, s.image.sha256 if s.image_id else "", s.reason.split("#")[0])
                  for s in Source.objects.select_related("image"))


LIST = ["/img/1.jpg", "/dup/1.jpg", "/img/2.jpg", "/broken/3.jpg", "/status/404", "/img/4.jpg", "/img/2.jpg",
        "/html/5.jpg", "/near/4.jpg", "/img/6.jpg", "/img/7.jpg"]


@pytest.mark.django_db(transaction=True)
def test_a_pool_of_processes_writes_the_same_rows_as_one_process(tmp_path, settings, monkeypatch):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    settings.SCENEIMG_FETCH_RETRIES = 0
    monkeypatch.setattr(batches, "BATCH_SIZE", 3)  # several batches in flight at once
    with ImageHost() as host:
        listing = url_list(tmp_path / "urls.txt", host, LIST)
        one = command("import_urls", str(listing), "--processes", "1")
        single = rows()
        Source.objects.all().delete()
        Image.objects.all().delete()
        many = command("import_urls", str(listing), "--processes", "3", "--workers", "2")
        assert (many, rows()) == (one, single)
    assert one == "stored 6, duplicate 2, invalid 2, error 1"
    assert Run.objects.filter(status="done").count() == 2


def drain(n=1):
    queue = django_rq.get_queue(queues.CRAWL)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_queued_url_import_runs_in_batches_with_exact_counters(tmp_path, settings, monkeypatch, redis_conn):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    settings.SCENEIMG_FETCH_RETRIES = 0
    monkeypatch.setattr(batches, "BATCH_SIZE", 4)
    with ImageHost() as host:
        listing = url_list(tmp_path / "urls.txt", host, LIST)
        run = launch.launch_import_urls(launch.import_urls_params(listing, workers=2))
        assert (run.jobs_total, Run.objects.get(pk=run.pk).total) == (3, len(LIST))
        drain()
    run.refresh_from_db()
    assert (run.status, run.jobs_done) == ("done", 3)
    counted = {k: run.counters.get(k, 0) for k in ("stored", "duplicate", "invalid", "error")}
    assert counted == {"stored": 6, "duplicate": 2, "invalid": 2, "error": 1}
    assert Source.objects.filter(run=run).count() == len(LIST)


def write_folder(folder, seeds):
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"img_{seed}.jpg").write_bytes(encode(photo_like(500, 400, seed), "JPEG"))
    return folder


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_fails_only_its_items_and_the_run_says_so(tmp_path, monkeypatch, redis_conn):
    monkeypatch.setattr(batches, "BATCH_SIZE", 3)
    folder = write_folder(tmp_path / "raw", range(1, 10))
    # A sidecar whose rank no database integer holds: its batch's rows cannot be written.
    (folder / "img_5.json").write_text(json.dumps({"url": "https://example.com/5.jpg", "rank": 10 ** 20}))
    run = launch.launch_import_folder(launch.import_folder_params(folder))
    assert run.jobs_total == 3
    drain()
    run.refresh_from_db()
    assert run.status == "done" and run.jobs_done == 3
    assert {k: run.counters.get(k, 0) for k in ("stored", "error")} == {"stored": 6, "error": 3}
    assert "3 item(s) failed with their batch" in run.notice
    failed = Source.objects.filter(run=run, outcome="error")
    assert sorted(os.path.basename(s.path) for s in failed) == ["img_4.jpg", "img_5.jpg", "img_6.jpg"]
    assert Image.objects.count() == 6


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_importing_overlapping_lists_store_each_picture_once(tmp_path, monkeypatch, redis_conn,
                                                                        worker_env):
    worker_env["SCENEIMG_FETCH_ALLOW_PRIVATE"] = "127.0.0.1"
    monkeypatch.setattr(batches, "BATCH_SIZE", 5)
    with ImageHost() as host:
        a = url_list(tmp_path / "a.txt", host, [f"/img/{n}.jpg" for n in range(0, 30)])
        b = url_list(tmp_path / "b.txt", host, [f"/dup/{n}.jpg" for n in range(15, 45)])
        runs = [launch.launch_import_urls(launch.import_urls_params(f, workers=4)) for f in (a, b)]
        workers = [start_worker(worker_env, queues.CRAWL) for _ in range(2)]
        outs = [w.communicate(timeout=180)[0].decode(errors="replace") for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    for run in runs:
        run.refresh_from_db()
        assert run.status == "done", run.error
        assert sum(run.counters.get(k, 0) for k in ("stored", "duplicate")) == 30
    assert Image.objects.count() == 45
    assert Source.objects.filter(outcome="stored").count() == 45
    assert Source.objects.count() == 60
    media = tmp_path / "media"
    stored = [p.name for p in (media / "images").rglob("*") if p.is_file()]
    assert sorted(stored) == sorted(os.path.basename(i.file.name) for i in Image.objects.all())


@pytest.mark.django_db
def test_links_leaving_the_folder_are_skipped_and_said(tmp_path):
    folder = write_folder(tmp_path / "raw", [1])
    elsewhere = write_folder(tmp_path / "elsewhere", [2])
    (folder / "inside.jpg").symlink_to(folder / "img_1.jpg")
    (folder / "outside.jpg").symlink_to(elsewhere / "img_2.jpg")
    assert command("import_folder", str(folder)) == "stored 1, duplicate 1, invalid 0, error 0"
    run = Run.objects.get()
    assert run.counters["skipped"] == 1 and run.total == 3
    assert "outside.jpg" in run.notice and "outside the folder" in run.notice
    assert not Source.objects.filter(path__endswith="outside.jpg").exists()
    assert Image.objects.count() == 1


@pytest.mark.django_db
def test_an_output_root_replaced_or_removed_after_launch_is_a_clear_failure(tmp_path):
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = output_folder(str(root), "living room")
    source = ingest_bytes(encode(photo_like(500, 400, 3), "JPEG"), Sighting(provider="baidu", url="http://x/1"))
    assert write_output(source, str(root), folder, {}, keyword=True).exists()
    moved = tmp_path / "moved"
    root.rename(moved)
    root.symlink_to(elsewhere)  # replaced by a link to another folder
    with pytest.raises(OutputRootError, match="replaced after launch"):
        output_folder(str(root), "kitchen")
    with pytest.raises(OutputRootError, match="replaced after launch"):
        write_output(source, str(root), folder, {}, keyword=True)
    root.unlink()  # removed
    with pytest.raises(OutputRootError, match="no longer exists"):
        write_output(source, str(root), folder, {}, keyword=True)
    assert list(elsewhere.iterdir()) == [] and not root.exists()


@pytest.mark.django_db(transaction=True)
def test_per_host_holds_across_the_pool_of_processes(tmp_path, settings, monkeypatch, redis_conn):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    monkeypatch.setattr(batches, "BATCH_SIZE", 4)
    with ImageHost() as host:
        listing = url_list(tmp_path / "urls.txt", host, [f"/slow/{n}.jpg?s=0.2" for n in range(12)])
        line = command("import_urls", str(listing), "--processes", "2", "--workers", "4", "--per-host", "2")
        assert line == "stored 12, duplicate 0, invalid 0, error 0"
        assert 1 <= host.peak <= 2
