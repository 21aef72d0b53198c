"""The VLM stage at scale: many concurrent requests, batches shared by RQ workers, a failing batch."""
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import django_rq
import pytest
from django.db import connection
from rq import Worker

from curation import runs
from curation.models import Image, Run
from sceneimg_site import queues
from tests.factories import stored_data, stored_image
from tests.fakes.openai_responses import FakeOpenAI
from tests.vlm.conftest import OPENAI_KEY
from vlm import model_input
from vlm.judge import judge_images
from vlm.launch import launch_vlm, vlm_options
from vlm.models import VlmVerdict

ROOT = Path(__file__).resolve().parents[2]


def _judge(prompts, ids, workers, model="gpt-4.1"):
    return runs.run_in_foreground(Run.Kind.VLM, lambda t: judge_images(
        t, image_ids=ids, prompt_version_id=prompts["v3"].pk, backend="openai", model=model, workers=workers,
        timeout=10), {"model": model})


def test_64_concurrent_requests_store_every_verdict_exactly_once(db, prompts, openai_fake, make_images, settings):
    settings.SCENEIMG_VLM_RETRIES = 0
    openai_fake.latency = 0.05
    images = make_images(96)
    ids = [im.pk for im in images]
    run = _judge(prompts, ids + ids[:10], workers=64)  # an id given twice is asked about once
    rows = VlmVerdict.objects.filter(model="gpt-4.1")
    assert len(openai_fake.requests) == 96
    assert rows.count() == 96 and rows.values("image_id").distinct().count() == 96 and not rows.exclude(error="")
    assert run.status == "done" and run.total == 96 and run.processed == 96
    assert run.counters["kept"] + run.counters["rejected"] == 96
    # A rerun asks about nothing and writes nothing twice.
    again = _judge(prompts, ids, workers=64)
    assert len(openai_fake.requests) == 96 and rows.count() == 96 and again.counters["skipped"] == 96


def test_a_large_picture_goes_as_a_thumbnail_only_when_that_is_large_enough(db, prompts, openai_fake, settings):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tests.images import encode, photo_like

    settings.SCENEIMG_VLM_IMAGE_SIDE = 800
    small_thumb, large_thumb = stored_image(1, width=1600, height=1200), stored_image(2, width=1600, height=1200)
    # As ingest would store them with SCENEIMG_THUMB_SIZE 320 and 800.
    for image, side in ((small_thumb, 320), (large_thumb, 800)):
        name = default_storage.save(f"thumbs/t{image.pk}.jpg", ContentFile(encode(photo_like(side, side * 3 // 4, 7))))
        Image.objects.filter(pk=image.pk).update(thumbnail=name)
    settings.SCENEIMG_THUMB_SIZE = 800
    _judge(prompts, [small_thumb.pk, large_thumb.pk], workers=2)
    sent = {tuple(r["image_size"]) for r in openai_fake.requests}
    # The 800 px thumbnail goes as it is; the 320 px one is too small, so that file is decoded at
    # reduced scale instead (600x450 at 3/8).
    assert sent == {(800, 600), (600, 450)}
    assert openai_fake.count(image_sha=_sha(Image.objects.get(pk=large_thumb.pk).thumbnail)) == 1
    # With the 320 px setting no thumbnail is even opened: both go as downscaled files.
    settings.SCENEIMG_THUMB_SIZE = 320
    _judge(prompts, [small_thumb.pk, large_thumb.pk], workers=2, model="gpt-4.1-mini")
    assert openai_fake.count(model="gpt-4.1-mini") == 2
    expected = model_input.prepare_image(stored_data(large_thumb), 800)[0]
    assert openai_fake.count(model="gpt-4.1-mini", image_sha=_sha_bytes(expected)) == 1


@pytest.mark.parametrize("size, side, sent", [
    ((1600, 1200), 768, (600, 450)),  # libjpeg's 3/8 scale: no resampling
    ((1200, 1600), 768, (450, 600)),  # portrait
    ((1024, 768), 768, (640, 480)),  # 5/8
    ((4000, 3000), 768, (768, 576)),  # no k/8 scale lands in [576, 768]: 1000x750 at 2/8, then resampled
    ((3000, 200), 768, (750, 50)),
])
def test_a_large_jpeg_is_decoded_at_reduced_scale_within_the_models_side(size, side, sent):
    from PIL import Image as PILImage

    from tests.images import encode, photo_like

    data, reported = model_input.prepare_image(encode(photo_like(*size, 3)), side)
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == reported == sent
        assert model_input.SMALLEST_FRACTION * side <= max(im.size) <= side


@pytest.mark.parametrize("pil_subsampling, expected", [(0, "444"), (1, "422"), (2, "420")])
def test_a_reduced_scale_jpeg_keeps_the_sources_chroma_subsampling(pil_subsampling, expected):
    import simplejpeg

    from tests.images import encode, photo_like

    data = encode(photo_like(1600, 1200, 3), subsampling=pil_subsampling)
    out, _ = model_input.prepare_image(data, 1024)
    assert simplejpeg.decode_jpeg_header(out)[3] == expected


def test_rotated_grey_and_cmyk_jpegs_take_the_general_path():
    from PIL import Image as PILImage

    from tests.images import encode, photo_like

    photo = photo_like(1600, 1200, 4)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees
    for data, expected in ((encode(photo, exif=exif), (576, 768)), (encode(photo.convert("L")), (768, 576)),
                           (encode(photo.convert("CMYK")), (768, 576))):
        out, size = model_input.prepare_image(data, 768)
        with PILImage.open(io.BytesIO(out)) as im:
            assert im.mode == "RGB" and im.size == size == expected


def _sha(field):
    with field.storage.open(field.name, "rb") as fh:
        return _sha_bytes(fh.read())


def _sha_bytes(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- Batches shared by two real RQ workers ---

REFUSE_SQL = {
    "postgresql": [
        "CREATE OR REPLACE FUNCTION test_refuse_verdict() RETURNS trigger AS $$ BEGIN "
        "IF NEW.image_id = {id} THEN RAISE EXCEPTION 'verdict refused by the test'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER test_refuse_verdict BEFORE INSERT ON vlm_vlmverdict FOR EACH ROW "
        "EXECUTE FUNCTION test_refuse_verdict()",
    ],
    "sqlite": ["CREATE TRIGGER test_refuse_verdict BEFORE INSERT ON vlm_vlmverdict WHEN NEW.image_id = {id} "
               "BEGIN SELECT RAISE(ABORT, 'verdict refused by the test'); END"],
}
DROP_SQL = {"postgresql": ["DROP TRIGGER IF EXISTS test_refuse_verdict ON vlm_vlmverdict",
                           "DROP FUNCTION IF EXISTS test_refuse_verdict()"],
            "sqlite": ["DROP TRIGGER IF EXISTS test_refuse_verdict"]}


def _sql(statements, **values):
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement.replace("{id}", str(values.get("id", 0))))


@pytest.fixture
def refuse_verdict_for():
    """A database that refuses to store a verdict for one image, as a real constraint or outage would:
    the write of that image's whole batch fails in whichever worker holds it."""
    vendor = connection.vendor
    yield lambda image_id: _sql(REFUSE_SQL[vendor], id=image_id)
    _sql(DROP_SQL[vendor])


@pytest.fixture
def two_workers(worker_env, redis_conn, settings):
    fake = FakeOpenAI("valid", api_key=OPENAI_KEY, latency=0.3)
    fake.start()
    env = {**worker_env, "SCENEIMG_OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": OPENAI_KEY,
           "SCENEIMG_VLM_RETRIES": "0", "SCENEIMG_VLM_PROMPT": "", "SCENEIMG_HEARTBEAT_SECONDS": "1"}
    settings.SCENEIMG_OPENAI_BASE_URL, settings.SCENEIMG_OPENAI_API_KEY = fake.base_url, OPENAI_KEY
    procs = [subprocess.Popen([sys.executable, "manage.py", "rqworker", queues.VLM, "--worker-class",
                               "rq.SimpleWorker", "--name", f"vlm-test-{n}-{os.getpid()}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for n in range(2)]
    try:
        deadline = time.monotonic() + 90
        while len(Worker.all(connection=redis_conn)) < 2:
            assert all(p.poll() is None for p in procs), procs[0].stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the RQ workers did not start"
            time.sleep(0.2)
        yield fake
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        fake.stop()


def _wait_for(run, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        run.refresh_from_db()
        if not run.is_active:
            return run
        assert time.monotonic() < deadline, f"run still {run.status}: {run.counters}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_batches_and_a_failing_batch_fails_only_its_images(
        prompts, two_workers, refuse_verdict_for, settings):
    from rq.job import Job

    settings.SCENEIMG_VLM_BATCH_SIZE = 4
    images = [stored_image(n, width=160, height=120) for n in range(16)]
    refused = images[5]  # in the second batch
    refuse_verdict_for(refused.pk)
    run = launch_vlm(vlm_options(backend="openai", model="gpt-4.1", prompt="v3", decision="any", workers=2))
    assert run.jobs_total == 4
    run = _wait_for(run)

    assert run.status == Run.Status.DONE, run.error
    verdicts = VlmVerdict.objects.filter(run=run)
    judged = set(verdicts.values_list("image_id", flat=True))
    assert verdicts.count() == len(judged)  # each stored once
    batch_b1 = {im.pk for im in images[4:8]}
    assert {im.pk for im in images} - batch_b1 <= judged and refused.pk not in judged
    # Counters and progress are exact: every image is counted once, the unstored ones as errors.
    c = run.counters
    assert run.total == 16 and run.processed == 16
    assert c["kept"] + c["rejected"] == len(judged) and c["error"] == 16 - len(judged)
    assert c["failed_batches"] == 1 and "batch b1 failed" in run.error and "verdict refused" in run.error
    # The run is done inside its last job, a moment before RQ marks that job finished.
    deadline = time.monotonic() + 30
    while True:
        jobs = Job.fetch_many(list(run.job_ids), connection=django_rq.get_connection(queues.VLM))
        if all(job.get_status() == "finished" for job in jobs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [job.get_status() for job in jobs] == ["finished"] * 4  # the failed batch did not fail its job
    assert len({job.worker_name for job in jobs}) == 2, "both workers took batches"
