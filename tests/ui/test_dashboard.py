"""The progress dashboard: figures computed by a job, read whole by the page, every number a gallery link."""
import re
from html import unescape
from urllib.parse import parse_qs

import django_rq
import pytest
from django.contrib.auth.models import User
from rq import SimpleWorker

from crawl.models import Source
from curation import gallery, review
from curation.models import AutoStage
from dashboard import refresh
from dashboard.models import Snapshot
from sceneimg_site import queues
from tests.factories import image_row
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db
LINK = re.compile(r'<a href="/\?([^"]*)">(\d+)</a>')


@pytest.fixture
def collection(user):
    """Twelve images from two queries and a URL list; two people review some of them."""
    other = User.objects.create_user("sam", password="pw-sam-12345")
    images = []
    for n in range(12):
        stage = [AutoStage.CLIP, AutoStage.VLM, AutoStage.NEAR_DUPLICATE, None][n % 4]
        decision = None if stage is None else ("reject" if stage == AutoStage.NEAR_DUPLICATE or n % 3 == 0 else "keep")
        images.append(image_row(n + 1, auto_decision=decision, auto_stage=stage))
    for n, image in enumerate(images):
        provider, query = [("baidu", "凌乱的厨房"), ("baidu", "messy desk & cables"), ("url_list", "")][n % 3]
        Source.objects.create(image=image, provider=provider, query=query, outcome="stored")
    review.set_decision([i.pk for i in images[:4]], "keep", user)
    review.set_decision([i.pk for i in images[2:6]], "reject", other)
    pv = PromptVersion.objects.create(name="v2", system_text="s", user_template="u", content_hash="b" * 64)
    for image in images[:5]:
        VlmVerdict.objects.create(image=image, prompt_version=pv, backend="openai", model="m", decision="keep",
                                  score=0.8, cost_usd=0.0125)
    return images


def test_every_number_on_the_dashboard_is_the_size_of_the_gallery_it_opens(client_in, collection):
    refresh.refresh()
    page = client_in.get("/dashboard/").content.decode()
    links = LINK.findall(page)
    assert len(links) > 20
    for qs, number in links:
        qs = unescape(qs)
        found = gallery.filter_images(qs, ordered=False).count()
        assert found == int(number), f"/?{qs} shows {found} images, the dashboard says {number}"
    # The figures a curator reads first: decided by a person, keep rate per query, cost per prompt.
    assert "6</a> of <a href=\"/\">12</a> images decided by a person" in page
    assert "凌乱的厨房" in page and "messy desk &amp; cables" in page
    assert "0.0625" in page  # five verdicts at 0.0125


def test_reviewers_agreement_counts_decisions_against_the_automatic_one(collection):
    rows = {r["name"]: r for r in refresh.refresh().figures["reviewers"]}
    assert rows["rita"]["decisions"] == 4 and rows["sam"]["decisions"] == 4
    assert 0 <= rows["rita"]["agreement"] <= 1
    assert parse_qs(rows["sam"]["disagree_qs"]) == {"reviewer": ["sam"], "disagree": ["1"]}


def test_the_page_asks_for_one_refresh_however_often_it_is_opened(client_in, collection, redis_conn,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = client_in.get("/dashboard/")
    assert "Computing the figures for the first time" in first.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client_in.get("/dashboard/")
    queue = django_rq.get_queue(queues.DEFAULT)
    assert queue.job_ids == [refresh.JOB_ID]
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert Snapshot.objects.count() == 1
    page = client_in.get("/dashboard/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="dash-decisions"' in page and "hx-trigger" not in page  # fresh figures: no more polling


def test_the_stage_filter_refuses_an_unknown_stage(client_in):
    response = client_in.get("/count/?stage=sideways")
    assert response.status_code == 400 and "stage" in response.content.decode()


def test_refresh_keeps_only_the_latest_few_snapshots(collection):
    for _ in range(refresh.KEEP + 2):
        refresh.refresh()
    assert Snapshot.objects.count() == refresh.KEEP


def test_a_days_bar_opens_the_images_decided_or_judged_that_day(collection):
    figures = refresh.refresh().figures
    today = figures["reviews_per_day"][-1]
    assert today["value"] == 8 and today["qs"] == f"reviewed_on={today['day']}"
    assert gallery.filter_images(today["qs"], ordered=False).count() == 6  # eight decisions on six images
    judged = figures["vlm_cost_per_day"][-1]
    assert gallery.filter_images(judged["qs"], ordered=False).count() == 5
    assert not figures["reviews_per_day"][0]["qs"]  # an empty day has nothing to open
    with pytest.raises(gallery.FilterError, match="reviewed_on: expected a date"):
        gallery.filter_images("reviewed_on=yesterday", ordered=False).count()
