"""In a real browser: a keyword crawl launched from the runs page collects until N images passed the
chained pipeline (CLIP, then the VLM), against the loopback Baidu and the fake OpenAI; the run's page
shows the yield per query and the stages it started."""
import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from crawl import collect
from curation.models import Decision, Image, Run
from tests.browser.conftest import log_in, screenshot
from tests.crawl.test_collect import drain
from tests.fakes.baidu import serve_for_test
from tests.vlm.conftest import fast_retries, openai_fake, prompts  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_baidu(settings):
    yield from serve_for_test(settings)


@pytest.fixture
def staff_page(live_server, browser_page, django_user_model):
    user = django_user_model.objects.create_user("lead", password="browser-pw-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="curation", codename="add_run"))
    log_in(browser_page, live_server.url, "lead")
    browser_page.base_url = live_server.url
    return browser_page


def test_a_crawl_from_the_runs_page_collects_until_enough_were_kept(
        staff_page, fake_baidu, redis_conn, prompts, openai_fake, settings):  # noqa: F811
    settings.SCENEIMG_PIPELINE_INDOOR_MARGIN = -1.0  # random CLIP weights: CLIP keeps all, the VLM decides
    fake_baidu.queries = {q: range(base, base + 10) for q, base in (("客厅", 5000), ("卧室", 5100), ("书房", 5200))}
    page, base = staff_page, staff_page.base_url
    page.goto(f"{base}/runs/")
    form = page.locator("#launch-crawl")
    form.locator("[name='crawl-queries']").fill("客厅\n卧室\n书房")
    form.locator("[name='crawl-until_kept']").fill("6")
    form.get_by_role("button", name="Launch").click()
    page.wait_for_url(f"{base}/runs/**")
    root = Run.objects.get(kind=Run.Kind.CRAWL, parent=None)
    assert root.params["until_kept"] == 6 and root.params["pipeline"]

    drain()  # the app's workers: crawl rounds, their CLIP and VLM stages, round after round

    kept = collect.totals(root)[2]
    assert kept >= 6
    assert Image.objects.filter(sources__run__in=collect.rounds(root), final_decision=Decision.KEEP) \
        .distinct().count() == kept
    page.goto(f"{base}/runs/{root.pk}/")
    panel = page.locator("#run-collect")
    expect(panel).to_contain_text("Collect until 6 kept")
    expect(panel).to_contain_text(f"{kept} kept of 6 wanted")
    expect(panel.locator("tbody")).to_contain_text("客厅")
    expect(page.get_by_role("link", name="clip run #")).not_to_have_count(0)
    screenshot(page, "collect-until-kept")
    page.get_by_role("link", name="clip run #").first.click()
    expect(page.get_by_role("link", name="vlm run #")).not_to_have_count(0)
