"""In a real browser: export as webdataset (freezing a snapshot), read its provenance, decide again,
export again, compare the two snapshots and open a reason's images in the gallery."""
import re

import django_rq
import pytest
from playwright.sync_api import expect
from rq import SimpleWorker

from crawl.models import Source
from curation import review
from curation.models import Snapshot
from sceneimg_site import queues
from tests.browser.conftest import screenshot
from tests.factories import prompt_version, stored_image, verdict

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def work_export_queue():
    queue = django_rq.get_queue(queues.EXPORT)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def export_from_the_page(page, fmt):
    page.goto(f"{page.base_url}/export/")
    page.select_option("#id_format", fmt)
    page.click("#export-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/export/\d+/$"))
    work_export_queue()
    expect(page.locator("#export-status .run-status")).to_have_text("done", timeout=8000)


def test_export_snapshot_provenance_and_compare(logged_in_page, browser_user, settings, tmp_path, redis_conn):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    images = [stored_image(seed, auto_decision="keep") for seed in range(4)]
    pv = prompt_version("v3", system_text="Is this a lived-in room?")
    verdict(images[0], pv, "keep", 0.9, model="qwen2.5-vl")
    Source.objects.create(image=images[0], provider="baidu", query="messy kitchen", outcome="stored",
                          url="http://img.test/k.jpg", page_url="http://page.test/k.html")
    page = logged_in_page

    export_from_the_page(page, "webdataset")
    expect(page.locator("#export-files a", has_text="sceneimg-000000.tar")).to_be_visible()
    page.click("#export-snapshot a >> nth=0")
    expect(page).to_have_url(re.compile(r"/export/snapshots/\d+/$"))
    expect(page.locator("#snapshot-count")).to_have_text("4")
    screenshot(page, "snapshot-detail")
    page.click("#snapshot-provenance")
    row = page.locator("#provenance-table tbody tr", has_text="messy kitchen")
    expect(row).to_contain_text("http://page.test/k.html")
    expect(row).to_contain_text("openai/qwen2.5-vl: keep")
    screenshot(page, "snapshot-provenance")

    review.set_decision([images[1].pk], "reject", browser_user)
    export_from_the_page(page, "parquet")
    first, second = Snapshot.objects.order_by("pk")
    page.goto(f"{page.base_url}/export/snapshots/")
    page.select_option("#id_diff_a", str(first.pk))
    page.select_option("#id_diff_b", str(second.pk))
    page.click("#compare-snapshots button[type=submit]")
    expect(page.locator("#diff-table tr[data-kind=left] .diff-total")).to_have_text("1")
    expect(page.locator("#diff-table tr[data-kind=entered] .diff-total")).to_have_text("0")
    screenshot(page, "snapshot-diff")
    page.click("#diff-table a[data-reason='human override']")
    expect(page).to_have_url(re.compile(rf"/\?ids={images[1].pk}$"))
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator(f"#card-{images[1].pk}")).to_have_count(1)
    assert not page.js_errors
