"""Retraining after every K new human decisions, from each review path on the web and the bulk review job."""
import django_rq
import pytest
from django.contrib.auth import get_user_model
from rq import SimpleWorker

from curation import learned, review
from curation.models import Run
from sceneimg_site import queues
from tests.factories import image_row

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.SCENEIMG_LEARNED_MIN_DECISIONS = 10
    settings.SCENEIMG_LEARNED_RETRAIN_EVERY = 3


@pytest.fixture
def reviewer(client):
    user = get_user_model().objects.create_user("rev")
    client.force_login(user)
    return user


def web_decide(client, path, image_id, decision):
    """One human decision on one image through the named web path; returns the response."""
    if path == "decide":
        return client.post(f"/images/{image_id}/decide/", {"decision": decision}, HTTP_HX_REQUEST="true")
    if path == "selection":
        return client.post("/review/", {"ids": str(image_id), "decision": decision}, HTTP_HX_REQUEST="true")
    return client.post("/review/bulk/", {"qs": f"ids={image_id}", "decision": decision}, HTTP_HX_REQUEST="true")


def train_runs():
    return list(Run.objects.filter(kind=Run.Kind.TRAIN).values_list("created_by__username", "status"))


@pytest.mark.parametrize("path", ["decide", "selection", "bulk"])
def test_the_kth_decision_on_the_web_launches_training_and_fewer_do_not(
        client, reviewer, redis_conn, path, django_capture_on_commit_callbacks):
    images = [image_row(100 + i) for i in range(16)]
    # The first training needs 10 decisions of both kinds: 9 made elsewhere, the 10th on the web.
    review.set_decision([im.pk for im in images[:5]], "keep", reviewer)
    review.set_decision([im.pk for im in images[5:9]], "reject", reviewer)
    assert not learned.retrain_due()
    with django_capture_on_commit_callbacks(execute=True):
        assert web_decide(client, path, images[9].pk, "reject").status_code == 200
    assert train_runs() == [("rev", Run.Status.QUEUED)]
    assert django_rq.get_queue(queues.DEFAULT).count == 1

    # Later ones every 3 decisions, counted from where the last training began.
    Run.objects.filter(kind=Run.Kind.TRAIN).update(status=Run.Status.DONE)
    for im in images[10:12]:
        with django_capture_on_commit_callbacks(execute=True):
            assert web_decide(client, path, im.pk, "keep").status_code == 200
    assert len(train_runs()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert web_decide(client, path, images[12].pk, "keep").status_code == 200
    assert len(train_runs()) == 2


def test_a_refused_decision_launches_nothing(client, reviewer, redis_conn, django_capture_on_commit_callbacks):
    images = [image_row(100 + i) for i in range(12)]
    review.set_decision([im.pk for im in images[:5]], "keep", reviewer)
    review.set_decision([im.pk for im in images[5:9]], "reject", reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        assert web_decide(client, "decide", images[9].pk, "maybe").status_code == 400
    assert train_runs() == []


def test_the_background_bulk_job_launches_training_when_its_decisions_make_it_due(
        client, reviewer, redis_conn, settings, django_capture_on_commit_callbacks):
    settings.SCENEIMG_REVIEW_SYNC_LIMIT = 2
    images = [image_row(100 + i) for i in range(13)]
    review.set_decision([im.pk for im in images[:5]], "keep", reviewer)
    queue = django_rq.get_queue(queues.DEFAULT)

    def bulk(ids, decision):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post("/review/bulk/", {"qs": "ids=" + ",".join(str(i) for i in ids), "decision": decision},
                               HTTP_HX_REQUEST="true").status_code == 200
        with django_capture_on_commit_callbacks(execute=True):  # the job's decisions commit
            SimpleWorker([queue], connection=queue.connection).work(burst=True)

    bulk([im.pk for im in images[5:8]], "reject")  # 8 decisions: too few
    assert list(Run.objects.filter(kind=Run.Kind.REVIEW).values_list("status", flat=True)) == [Run.Status.DONE]
    assert train_runs() == []
    bulk([im.pk for im in images[8:11]], "reject")  # 11
    assert Run.objects.filter(kind=Run.Kind.REVIEW).count() == 2
    assert [kind for kind in Run.objects.order_by("id").values_list("kind", flat=True)][-1] == Run.Kind.TRAIN
    run = Run.objects.get(kind=Run.Kind.TRAIN)
    assert run.created_by == reviewer and run.params["last_review"] == learned.last_review_id()
