"""Collect until N kept and expand from kept, against the loopback Baidu and the fake OpenAI: rounds
of crawling, each judged by the real pipeline (CLIP, then the VLM) on RQ workers before the next."""
import io

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse
from rq import SimpleWorker

from crawl import collect, expand_kept, launch
from crawl.models import Source
from curation.models import Decision, Image, Run
from sceneimg_site import queues
from tests.factories import image_row
from tests.fakes.baidu import serve_for_test
from tests.vlm.conftest import fast_retries, openai_fake, prompts  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


@pytest.fixture
def keep_all_clip(settings):
    settings.SCENEIMG_PIPELINE_INDOOR_MARGIN = -1.0  # random CLIP weights: CLIP keeps all, the VLM decides


def drain(limit=30):
    """Run the crawl, score and VLM queues until nothing is left, as the app's workers would."""
    names = (queues.CRAWL, queues.SCORE, queues.VLM)
    for _ in range(limit):
        if not any(django_rq.get_queue(n).count for n in names):
            return
        for name in names:
            queue = django_rq.get_queue(name)
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
    raise AssertionError("the queues never emptied")


def rounds_of(root):
    return list(collect.rounds(root).order_by("pk"))


def test_a_crawl_collects_query_after_query_until_enough_passed_the_pipeline(
        fake_baidu, redis_conn, prompts, openai_fake, keep_all_clip, client, django_user_model):  # noqa: F811
    fake_baidu.queries = {q: range(base, base + 10) for q, base in (("a", 4000), ("b", 4100), ("c", 4200),
                                                                   ("d", 4300), ("e", 4400))}
    out = io.StringIO()
    call_command("crawl_baidu", "-q", "a", "-q", "b", "-q", "c", "-q", "d", "-q", "e", "--until-kept", "9",
                 stdout=out)
    assert "round 1 of collecting 9 kept" in out.getvalue()
    drain()
    root = Run.objects.get(kind=Run.Kind.CRAWL, parent=None)
    done = rounds_of(root)
    per_query = {row["name"]: row for row in collect.yields(root)}
    # Each round took the next query (each runs dry after 10), and the rounds stopped at the first
    # query after which 9 were kept, counted by the VLM's own decisions, not by what was fetched.
    kept_after, total = [], 0
    for query in "abcde":
        total += per_query.get(query, {"kept": 0})["kept"]
        kept_after.append(total)
    expected_rounds = next(i + 1 for i, k in enumerate(kept_after) if k >= 9)
    assert len(done) == expected_rounds and all(r.status == Run.Status.DONE for r in done)
    assert [r.params["queries"][r.params["cursor"]] for r in done] == list("abcde")[:expected_rounds]
    assert set(per_query) == set("abcde"[:expected_rounds])
    assert all(row["fetched"] == 10 and row["new"] == 10 for row in per_query.values())
    kept = Image.objects.filter(sources__run__in=done, final_decision=Decision.KEEP).distinct().count()
    assert kept == collect.totals(root)[2] >= 9
    root.refresh_from_db()
    assert root.notice.startswith(f"collected: {kept} kept of 9 wanted")
    # every round has its own CLIP and VLM children
    assert Run.objects.filter(kind=Run.Kind.CLIP, parent__in=done).count() == expected_rounds
    # the root's page shows the yield per query
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-12345678"))
    page = client.get(f"/runs/{root.pk}/").content.decode()
    assert "Collect until 9 kept" in page and f"<td>{per_query['a']['kept']}</td>" in page
    later = done[-1]
    if later.pk != root.pk:
        assert f"Round {later.params['round']} of the collection" in client.get(f"/runs/{later.pk}/").content.decode()


def test_a_collection_stops_when_its_fetch_budget_is_used(fake_baidu, redis_conn, prompts, openai_fake,  # noqa: F811
                                                         keep_all_clip):
    fake_baidu.queries = {q: range(base, base + 10) for q, base in (("a", 5000), ("b", 5100), ("c", 5200))}
    call_command("crawl_baidu", "-q", "a", "-q", "b", "-q", "c", "--until-kept", "1000", "--max-fetches", "15",
                 stdout=io.StringIO())
    drain()
    root = Run.objects.get(kind=Run.Kind.CRAWL, parent=None)
    assert len(rounds_of(root)) == 2 and not Source.objects.filter(query="c").exists()
    assert root.params["max_fetches"] == 15
    root.refresh_from_db()
    assert root.notice.startswith("stopped: the budget of 15 results is used")


def test_rounds_page_on_through_one_query_without_fetching_a_result_twice(fake_baidu, redis_conn, prompts,  # noqa: F811
                                                                          openai_fake, keep_all_clip):  # noqa: F811
    fake_baidu.queries = {"deep": range(6000, 6075)}
    params = launch.crawl_params(["deep"], limit_per_query=200, until_kept=1000, round_pages=1)
    launch.launch_crawl(params)
    drain()
    root = Run.objects.get(kind=Run.Kind.CRAWL, parent=None)
    done = rounds_of(root)
    assert [r.params["round_offset"] for r in done] == [0, 30, 60]
    assert Source.objects.filter(query="deep").count() == 75
    assert not Source.objects.filter(outcome=Source.Outcome.DUPLICATE).exists()
    root.refresh_from_db()
    assert root.notice.startswith("stopped: no queries left to search")


def test_collect_options_are_checked(fake_baidu):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--until-kept must be at least 1"):
        call_command("crawl_baidu", "-q", "a", "--until-kept", "0")


def test_seeds_are_the_newest_kept_images_not_used_before():
    human = image_row(1, human_decision=Decision.KEEP)
    machine = image_row(2, auto_decision=Decision.KEEP)
    overturned = image_row(3, auto_decision=Decision.KEEP, human_decision=Decision.REJECT)
    used = image_row(4, human_decision=Decision.KEEP)
    Source.objects.create(provider=Source.Provider.BAIDU_SIMILAR, url="https://x.test/1.jpg", url_hash="h" * 40,
                          image=machine, seed_image=used, outcome=Source.Outcome.STORED)
    image_row(5, auto_decision=Decision.REJECT)
    assert expand_kept.seed_ids("human", 10) == [human.pk]
    assert expand_kept.seed_ids("pipeline", 10) == [machine.pk]
    assert expand_kept.seed_ids("both", 10) == [machine.pk, human.pk]
    assert expand_kept.seed_ids("both", 1) == [machine.pk]
    assert overturned.pk not in expand_kept.seed_ids("both", 10)


def test_expand_from_kept_launches_an_expansion_of_kept_images(fake_baidu, redis_conn):
    fake_baidu.similar_total = 4
    from crawl.ingest import Sighting, ingest_bytes
    from tests.fakes.baidu import jpeg, picture

    seed = ingest_bytes(jpeg(picture(91)), Sighting(provider="upload")).image
    Image.objects.filter(pk=seed.pk).update(human_decision=Decision.KEEP, final_decision=Decision.KEEP)
    out = io.StringIO()
    call_command("expand_from_kept", "--kept", "human", "--seeds", "5", stdout=out)
    run = Run.objects.get(kind=Run.Kind.SIMILAR)
    assert run.params["seeds"] == [{"image_id": seed.pk}] and "1 human-kept seeds" in out.getvalue()
    drain()
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    assert Source.objects.filter(seed_image=seed).exists()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="left to seed with"):  # each kept image seeds once
        call_command("expand_from_kept", "--kept", "human", stdout=io.StringIO())


def test_the_schedule_reenqueues_itself_and_stops(redis_conn):
    image_row(1, human_decision=Decision.KEEP)
    queue = django_rq.get_queue(queues.CRAWL)
    out = io.StringIO()
    call_command("expand_from_kept", "--every-hours", "6", stdout=out)
    first = expand_kept.scheduled_job_id()
    assert first in queue.scheduled_job_registry.get_job_ids() and "every 6 hours" in out.getvalue()
    # what the job does when due: one expansion, and the next one 6 hours on
    params = queue.fetch_job(first).args[0]
    expand_kept.expand_kept_scheduled_job(params, 6)
    assert Run.objects.filter(kind=Run.Kind.SIMILAR).count() == 1
    second = expand_kept.scheduled_job_id()
    assert second != first and second in queue.scheduled_job_registry.get_job_ids()
    # nothing new kept: no run, but the schedule goes on
    expand_kept.expand_kept_scheduled_job(params, 6)
    assert Run.objects.filter(kind=Run.Kind.SIMILAR).count() == 1 and expand_kept.scheduled_job_id() != second
    call_command("expand_from_kept", "--stop-schedule", stdout=out)
    assert expand_kept.scheduled_job_id() is None and "schedule stopped" in out.getvalue()


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password="pw-12345678", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_run"))
    client.force_login(user)
    return user


def test_the_launch_forms_start_a_collection_and_an_expansion_of_kept(client, staff, redis_conn):
    resp = client.post(reverse("curation:run_launch", args=["crawl"]), {
        "crawl-queries": "a\nb", "crawl-limit_per_query": 30, "crawl-batch_size": 4, "crawl-until_kept": 12})
    run = Run.objects.get(kind=Run.Kind.CRAWL)
    assert resp.status_code == 302, resp.content.decode()[:500]
    assert (run.params["until_kept"], run.params["max_fetches"], run.params["pipeline"]) == (12, 600, True)
    assert run.job_ids and run.job_ids[0].startswith(f"crawl-{run.pk}-")
    assert django_rq.get_queue(queues.CRAWL).fetch_job(run.job_ids[0]).func_name == "crawl.rounds.crawl_round_job"
    seed = image_row(7, auto_decision=Decision.KEEP)
    resp = client.post(reverse("curation:run_launch", args=["expand_kept"]), {
        "expand_kept-kept": "pipeline", "expand_kept-seeds": 5, "expand_kept-limit_per_seed": 20})
    expansion = Run.objects.get(kind=Run.Kind.SIMILAR)
    assert resp.status_code == 302 and expansion.params["seeds"] == [{"image_id": seed.pk}]
    resp = client.post(reverse("curation:run_launch", args=["expand_kept"]), {
        "expand_kept-kept": "human", "expand_kept-seeds": 5, "expand_kept-limit_per_seed": 20}, follow=True)
    assert "left to seed with" in resp.content.decode() and Run.objects.filter(kind=Run.Kind.SIMILAR).count() == 1
