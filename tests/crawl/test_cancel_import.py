"""Cancel that cancels: a URL import stops, records nothing it skipped, and stores nothing afterwards."""
import threading
import time

import pytest
from django.db import connection

from crawl import jobs, launch
from crawl.models import Source
from curation import runs
from curation.models import Image, Run
from tests.fakes.image_host import ImageHost

WORKERS = 4


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_url_import_stops_it(tmp_path, settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with ImageHost() as host:
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(host.url(f"/slow/{n}.jpg?s=0.2") for n in range(300)))
        params = launch.import_urls_params(listing, workers=WORKERS)
        run = runs.create_run(Run.Kind.IMPORT, params)
        Run.objects.filter(pk=run.pk).update(jobs_total=1)
        outcome = []

        def work():
            try:
                outcome.append(runs.run_job(run.pk, jobs.import_urls_stage(params)))
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        deadline = time.monotonic() + 60
        while Source.objects.filter(run=run).count() < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runs.cancel(run)
        # Counted once the cancel is written: what finishes after it is what was in hand.
        finished_at_cancel = Source.objects.filter(run=run).count()
        worker.join(60)

    assert outcome == ["cancelled"]
    run.refresh_from_db()
    sources = Source.objects.filter(run=run)
    print(f"cancelled at {finished_at_cancel} of 300; {sources.count()} sources in the end")
    assert run.status == Run.Status.CANCELLED and run.finished_at is not None
    assert sources.count() <= finished_at_cancel + WORKERS
    assert not sources.filter(created_at__gt=run.finished_at).exists()
    assert not Image.objects.filter(created_at__gt=run.finished_at).exists()
    assert not sources.filter(outcome=Source.Outcome.ERROR).exists()
    counted = {k: v for k, v in run.counters.items() if k in Source.Outcome.values}
    rows = {o: sources.filter(outcome=o).count() for o in Source.Outcome.values}
    assert counted == {o: n for o, n in rows.items() if n}


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_cancelled_is_finished_at_once_and_a_running_one_when_it_stops():
    queued = runs.create_run(Run.Kind.IMPORT, {"n": 1})
    assert runs.cancel(queued)
    queued.refresh_from_db()
    assert queued.finished_at is not None
    running = runs.create_run(Run.Kind.IMPORT, {"n": 2})
    Run.objects.filter(pk=running.pk).update(status=Run.Status.RUNNING)
    assert runs.cancel(running)
    running.refresh_from_db()
    assert (running.status, running.finished_at) == (Run.Status.CANCELLED, None)
