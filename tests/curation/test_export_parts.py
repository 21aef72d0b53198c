"""A large queued export written by part jobs: the same bytes as one job writes, exact counters, a
retried part that changes nothing, and no part files left by a failed or cancelled run."""
from pathlib import Path

import django_rq
import pytest
from django.core.files.storage import default_storage
from rq import SimpleWorker
from rq.job import Job

from curation import export, export_parts, export_retention, jobs, launch, runs
from curation.models import Run, SnapshotImage
from curation.runs import Tracker
from sceneimg_site import queues
from tests.factories import stored_image
from tests.workers import start_workers, stop_workers, wait_for

pytestmark = pytest.mark.django_db

IMAGES = 7
PART_SIZE = 3  # three parts: 3 + 3 + 1 rows
SHARD_SIZE = 2  # shards that straddle the parts


@pytest.fixture
def snapshot(settings):
    """A frozen snapshot of seven images, one of whose files is gone."""
    settings.SCENEIMG_EXPORT_PART_SIZE = PART_SIZE
    images = [stored_image(seed, width=64, height=48, fmt="PNG" if seed % 3 == 0 else "JPEG") for seed in range(IMAGES)]
    snap = export.freeze(Tracker(), "")
    default_storage.delete(images[4].file.name)
    return snap


def out_path(tmp_path, name, fmt):
    return tmp_path / (f"{name}.zip" if fmt == "zip" else name)


def contents(out):
    """The bytes of an export: the zip, or {name: bytes} of every file in the folder."""
    if out.is_file():
        return out.read_bytes()
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def part_files(settings):
    return sorted(p.name for p in (Path(settings.MEDIA_ROOT) / export_parts.STORAGE_FOLDER).rglob("part-*"))


def launch_split(snap, out, fmt, capture):
    with capture(execute=True):
        run = launch.launch_export(launch.export_params(snapshot=snap.pk, fmt=fmt, out=out, shard_size=SHARD_SIZE))
    return run


def work(capture):
    """Run the export queue until it is empty: a job enqueues the next ones when its transaction commits."""
    queue = django_rq.get_queue(queues.EXPORT)
    while queue.count:
        with capture(execute=True):
            SimpleWorker([queue], connection=queue.connection).work(burst=True)


def work_one(capture, *jobs):
    """Run the export queue's next job, once for each of `jobs` (what they are, for the reader)."""
    queue = django_rq.get_queue(queues.EXPORT)
    for _ in jobs:
        with capture(execute=True):
            SimpleWorker([queue], connection=queue.connection).work(burst=True, max_jobs=1)


def part_jobs(run, redis_conn):
    found = [Job.fetch(job_id, connection=redis_conn) for job_id in run.job_ids]
    return [job for job in found if job.func_name.endswith("export_part_job")]


@pytest.mark.parametrize("fmt", ["zip", "webdataset", "folder"])
def test_parts_write_the_bytes_one_job_writes_and_count_exactly(snapshot, tmp_path, settings, redis_conn, fmt,
                                                               django_capture_on_commit_callbacks):
    single = out_path(tmp_path, "single", fmt)
    tracker = Tracker()
    export.export_snapshot(tracker, snapshot, single, fmt, shard_size=SHARD_SIZE)
    assert tracker.counts == {"exported": IMAGES - 1, "missing": 1}

    split = out_path(tmp_path, "split", fmt)
    run = launch_split(snapshot, split, fmt, django_capture_on_commit_callbacks)
    work(django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    assert len(part_jobs(run, redis_conn)) == 3 and run.jobs_done == run.jobs_total == 4
    assert contents(split) == contents(single)
    assert run.total == IMAGES and run.processed == IMAGES
    assert {k: run.counters[k] for k in ("exported", "missing")} == {"exported": IMAGES - 1, "missing": 1}
    assert run.result == str(split)
    assert part_files(settings) == [] and not split.with_name(split.name + ".part").exists()


def test_a_small_export_and_parquet_stay_one_job(snapshot, tmp_path, settings, redis_conn,
                                                 django_capture_on_commit_callbacks):
    run = launch_split(snapshot, tmp_path / "p", "parquet", django_capture_on_commit_callbacks)
    work(django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE and run.jobs_total == 1 and (tmp_path / "p" / export.PARQUET_NAME).is_file()
    settings.SCENEIMG_EXPORT_PART_SIZE = IMAGES
    run = launch_split(snapshot, tmp_path / "one.zip", "zip", django_capture_on_commit_callbacks)
    work(django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE and run.jobs_total == 1 and run.counters["exported"] == IMAGES - 1


def test_a_retried_part_adds_nothing(snapshot, tmp_path, settings, redis_conn, django_capture_on_commit_callbacks):
    single = tmp_path / "single.zip"
    export.export_snapshot(Tracker(), snapshot, single, "zip")
    run = launch_split(snapshot, tmp_path / "split.zip", "zip", django_capture_on_commit_callbacks)
    work_one(django_capture_on_commit_callbacks, "the freeze job, which enqueues the parts")
    first = part_jobs(Run.objects.get(pk=run.pk), redis_conn)[0]
    jobs.export_part_job(run.pk, **first.kwargs)
    counted = Run.objects.get(pk=run.pk).counters
    jobs.export_part_job(run.pk, **first.kwargs)  # the same job again: its worker was thought lost, say
    assert Run.objects.get(pk=run.pk).counters == counted
    assert part_files(settings) == ["part-00000.zip"]
    work(django_capture_on_commit_callbacks)  # the queued copy of the first part among them
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, run.error
    assert (tmp_path / "split.zip").read_bytes() == single.read_bytes()
    assert run.counters["exported"] == IMAGES - 1 and run.counters["missing"] == 1
    assert part_files(settings) == []


@pytest.mark.django_db(transaction=True)  # the failure callback closes the worker's connection
def test_a_failing_part_fails_the_run_by_name_and_leaves_no_parts(snapshot, tmp_path, settings, redis_conn,
                                                                 django_capture_on_commit_callbacks):
    # A row of the second part that lacks what writing it needs (rows are never edited; this one was).
    rows = list(SnapshotImage.objects.filter(snapshot=snapshot).order_by("image_id"))
    broken = rows[PART_SIZE]
    SnapshotImage.objects.filter(pk=broken.pk).update(record=broken.record.replace('"byte_size"', '"size"'))
    run = launch_split(snapshot, tmp_path / "split.zip", "zip", django_capture_on_commit_callbacks)
    work(django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    second = f"part 2 of 3 (images {broken.image_id}-{rows[2 * PART_SIZE - 1].image_id})"
    assert f"export {second} failed: KeyError" in run.error, run.error
    assert part_files(settings) == []
    assert not (tmp_path / "split.zip").exists() and not (tmp_path / "split.zip.part").exists()


def test_cancelling_stops_the_parts_and_removes_their_files(snapshot, tmp_path, settings, redis_conn,
                                                            django_capture_on_commit_callbacks):
    run = launch_split(snapshot, tmp_path / "split.zip", "zip", django_capture_on_commit_callbacks)
    work_one(django_capture_on_commit_callbacks, "freeze", "first part")
    assert part_files(settings) == ["part-00000.zip"]
    queue = django_rq.get_queue(queues.EXPORT)
    run.refresh_from_db()
    second = part_jobs(run, redis_conn)[1]
    assert runs.cancel(run)
    assert queue.count == 0  # the queued parts were dropped
    # A worker that had taken the second part just before the cancel: it stops, and removes the parts.
    assert jobs.export_part_job(run.pk, **second.kwargs) == "cancelled"
    assert part_files(settings) == []
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.counters["exported"] == PART_SIZE  # the first part's
    assert not (tmp_path / "split.zip").exists()


def test_parts_of_a_cancel_no_part_job_saw_are_purged(snapshot, tmp_path, settings, redis_conn,
                                                    django_capture_on_commit_callbacks):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    run = launch_split(snapshot, tmp_path / "split.zip", "zip", django_capture_on_commit_callbacks)
    work_one(django_capture_on_commit_callbacks, "freeze", "first part")
    assert export_retention.purge().leftovers == []  # a run still going keeps its parts
    run.refresh_from_db()
    assert runs.cancel(run)  # the other parts were queued: no part job sees the cancel
    assert part_files(settings) == ["part-00000.zip"]
    assert export_retention.purge().leftovers == [f"{export.STORAGE_PREFIX}exports/parts/{run.pk}/part-00000.zip"]
    assert part_files(settings) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_share_one_exports_parts(snapshot, tmp_path, settings, worker_env, redis_conn):
    settings.SCENEIMG_EXPORT_PART_SIZE = 1
    worker_env = {**worker_env, "SCENEIMG_EXPORT_PART_SIZE": "1"}
    single = tmp_path / "single"
    export.export_snapshot(Tracker(), snapshot, single, "webdataset", shard_size=SHARD_SIZE)
    workers, ready = start_workers(worker_env, django_rq.get_queue(queues.EXPORT), 2, "export-test")
    run, names = None, set()
    try:
        if ready:
            run = launch.launch_export(launch.export_params(snapshot=snapshot.pk, fmt="webdataset",
                                                            out=tmp_path / "split", shard_size=SHARD_SIZE))
            wait_for(lambda: not Run.objects.get(pk=run.pk).is_active, timeout=300)
            names = {job.worker_name for job in part_jobs(Run.objects.get(pk=run.pk), redis_conn)}
    finally:
        logs = stop_workers(workers)
    assert run is not None, f"the workers did not start:\n{logs}"
    run.refresh_from_db()
    assert run.status == Run.Status.DONE, f"{run.status}: {run.error}\n{logs}"
    assert run.jobs_done == run.jobs_total == 1 + IMAGES
    assert len(names) == 2, logs  # both workers took parts
    assert run.counters["exported"] == IMAGES - 1 and run.counters["missing"] == 1 and run.processed == run.total
    assert contents(tmp_path / "split") == contents(single)
    assert part_files(settings) == []


def test_parts_read_from_and_write_to_s3(s3_storage, settings, tmp_path, redis_conn,
                                         django_capture_on_commit_callbacks):
    from tests.curation.test_s3_storage import keys, raw_get

    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    settings.SCENEIMG_EXPORT_PART_SIZE = 2
    for seed in range(5):
        stored_image(seed, width=64, height=48)
    snap = export.freeze(Tracker(), "")
    single = tmp_path / "single.zip"
    export.export_snapshot(Tracker(), snap, single, "zip")
    with django_capture_on_commit_callbacks(execute=True):  # a web export: its zip goes to the bucket
        run = launch.launch_export(launch.export_params(snapshot=snap.pk, fmt="zip"))
    work(django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE and run.jobs_total == 4, run.error
    assert run.result == f"{export.STORAGE_PREFIX}exports/export-{run.pk}.zip"
    assert raw_get(s3_storage, f"exports/export-{run.pk}.zip") == single.read_bytes()
    assert keys(s3_storage, "exports/") == [f"exports/export-{run.pk}.zip"]  # no part left
    assert not list((tmp_path / "exports").iterdir())
