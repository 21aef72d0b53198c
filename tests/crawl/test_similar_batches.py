"""A queued reverse-image expansion runs as batches of seeds, one RQ job each, that any number of
workers share: exact counters and total, and the run fails only when every seed of every batch failed."""
import django_rq
import pytest
from rq import SimpleWorker

from crawl import baidu_similar as similar
from crawl import launch
from crawl.models import Source
from curation.models import Image, Run
from sceneimg_site import queues
from tests.fakes.baidu import jpeg, picture, serve_for_test

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings, redis_conn):
    yield from serve_for_test(settings)


def drain():
    queue = django_rq.get_queue(queues.CRAWL)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_seeds_are_shared_out_as_batches_with_exact_counters(fake_baidu):
    fake_baidu.similar_total = 4
    seeds = [similar.store_seed_upload(f"seed-{i}.jpg", jpeg(picture(700 + i))) for i in range(3)]
    seeds.append(similar.store_seed_upload("broken.jpg", b"not an image at all"))
    run = launch.launch_similar(launch.similar_params(seeds, limit_per_seed=10, max_concurrent=2, use_dhash=False))
    assert (run.jobs_total, Run.objects.get(pk=run.pk).total) == (2, 40)
    drain()
    run.refresh_from_db()
    assert (run.status, run.jobs_done) == (Run.Status.DONE, 2), run.error
    assert "broken.jpg is not a usable image" in run.error
    sources = Source.objects.filter(run=run)
    assert sources.count() == 12 and run.total == 12
    counted = {k: run.counters.get(k, 0) for k in Source.Outcome.values}
    assert counted == {o: sources.filter(outcome=o).count() for o in Source.Outcome.values}
    assert (run.counters["_seeds_done"], run.counters["_seeds_failed"]) == (3, 1)
    assert Image.objects.count() == run.counters["stored"] > 0


def test_the_run_fails_only_when_the_seeds_of_every_batch_failed(fake_baidu):
    seeds = [similar.store_seed_upload(f"broken-{i}.jpg", b"junk") for i in range(2)]
    run = launch.launch_similar(launch.similar_params(seeds, limit_per_seed=5, max_concurrent=1))
    assert run.jobs_total == 2
    drain()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "every seed failed" in run.error
    assert run.counters["_seeds_failed"] == 2 and run.total == 0
