"""In a real browser: compare two prompt versions and open a cell in the gallery; export and download."""
import io
import json
import re
import zipfile

import django_rq
import pytest
from playwright.sync_api import expect
from rq import SimpleWorker

from sceneimg_site import queues
from tests.browser.conftest import screenshot
from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (v1 decision, v2 decision, human decision)
PLAN = [
    ("keep", "keep", "keep"),
    ("keep", "reject", "keep"),
    ("keep", "reject", None),
    ("reject", "keep", "reject"),
    ("reject", "reject", None),
    ("keep", "keep", None),
]


@pytest.fixture
def judged():
    v1 = PromptVersion.objects.create(name="v1", system_text="s1", user_template="u", content_hash="1" * 64)
    v2 = PromptVersion.objects.create(name="v2", system_text="s2", user_template="u", content_hash="2" * 64)
    images = []
    for i, (d1, d2, human) in enumerate(PLAN):
        img = stored_image(700 + i, auto_decision=d2, human_decision=human, vlm_score=0.2 + 0.1 * i)
        images.append(img)
        for pv, decision in ((v1, d1), (v2, d2)):
            VlmVerdict.objects.create(image=img, prompt_version=pv, backend="openai", model="gpt-4.1",
                                      decision=decision, score=0.9 if decision == "keep" else 0.2,
                                      reason=f"{pv.name} says {decision}", tags=["kitchen"])
    return v1, v2, images


def test_compare_two_prompt_versions_and_open_a_cell(logged_in_page, judged):
    v1, v2, images = judged
    page = logged_in_page
    page.click(".mainnav >> text=Compare")
    expect(page).to_have_url(re.compile(r"/vlm/compare/$"))
    page.select_option("#id_a", str(v1.pk))
    page.select_option("#id_b", str(v2.pk))
    page.click("#compare-form button[type=submit]")
    expect(page).to_have_url(re.compile(rf"a={v1.pk}&model_a=openai%3Agpt-4.1&b={v2.pk}"))
    expect(page.locator("#agreement-rate")).to_have_text(re.compile(r"^50"))  # 3 of 6 agree
    expect(page.locator("[data-cell=keep-reject]")).to_have_text("2")
    expect(page.locator("#threshold-chart polyline").first).to_be_attached()
    screenshot(page, "compare")
    page.click("[data-cell=keep-reject]")
    expect(page).to_have_url(re.compile(rf"verdict={v1.pk}%3Akeep&verdict={v2.pk}%3Areject"))
    expect(page.locator("#grid .card")).to_have_count(2)
    for img in (images[1], images[2]):
        expect(page.locator(f"#card-{img.pk}")).to_have_count(1)
    assert not page.js_errors


def test_export_from_a_filter_and_download(logged_in_page, judged, settings, tmp_path, redis_conn):
    settings.SCENEIMG_EXPORT_DIR = str(tmp_path / "exports")
    page = logged_in_page
    page.click(".mainnav >> text=Export")
    expect(page.locator("#id_filter")).to_have_value("final=keep")
    expect(page.locator("#export-estimate")).to_contain_text("3 images match")
    page.click("#export-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/export/\d+/$"))
    expect(page.locator("#export-status .run-status")).to_have_text("queued")

    queue = django_rq.get_queue(queues.EXPORT)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    # The status block polls every 2 s and stops once the run has ended.
    expect(page.locator("#export-status .run-status")).to_have_text("done", timeout=8000)
    expect(page.locator("#download-link")).to_be_visible()
    screenshot(page, "export-done")
    with page.expect_download() as info:
        page.click("#download-link")
    download = info.value
    assert re.fullmatch(r"sceneimg-export-\d+\.zip", download.suggested_filename)
    with zipfile.ZipFile(io.BytesIO(open(download.path(), "rb").read())) as zf:
        rows = [json.loads(line) for line in zf.read("metadata.jsonl").decode().splitlines()]
        assert len(rows) == 3 and all(zf.getinfo(r["file_name"]).compress_type == zipfile.ZIP_STORED for r in rows)
    assert {r["final_decision"] for r in rows} == {"keep"}
    assert not page.js_errors
