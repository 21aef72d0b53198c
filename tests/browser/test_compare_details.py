"""The compare page in a real browser: every judged image counted, "only by A / only by B" open exactly
those images in the gallery, disagreements shown inline, the two prompts side by side, cost per side."""
import re

import pytest
from playwright.sync_api import expect

from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (v1 decision, v2 decision or None when v2 never judged it, human decision)
PLAN = [
    ("keep", "keep", "keep"),
    ("keep", "reject", "keep"),
    ("reject", "keep", None),
    ("reject", "reject", None),
    ("keep", None, None),
    ("keep", None, "reject"),
]


@pytest.fixture
def judged():
    v1 = PromptVersion.objects.create(name="v1", system_text="Keep rooms with clutter.\nReject outdoor photos.",
                                      user_template="Judge it.", content_hash="1" * 64)
    v2 = PromptVersion.objects.create(name="v2", system_text="Keep rooms with everyday clutter.\nReject outdoor photos.",
                                      user_template="Judge it.", content_hash="2" * 64)
    images = []
    for i, (d1, d2, human) in enumerate(PLAN):
        img = stored_image(800 + i, human_decision=human)
        images.append(img)
        for pv, decision, cost in ((v1, d1, 0.001), (v2, d2, 0.002)):
            if decision:
                VlmVerdict.objects.create(image=img, prompt_version=pv, backend="openai", model="gpt-4.1",
                                          decision=decision, score=0.9 if decision == "keep" else 0.1,
                                          reason=f"{pv.name} thinks {decision}", cost_usd=cost)
    return v1, v2, images


def test_compare_counts_links_disagreements_prompts_and_cost(logged_in_page, judged):
    v1, v2, images = judged
    page = logged_in_page
    page.goto(f"{page.base_url}/vlm/compare/?a={v1.pk}&b={v2.pk}")
    rows = page.locator("#metrics tbody tr")
    # Judged: every image the side decided (6 and 4), not only the 3 and 2 a person decided.
    expect(rows.nth(0).locator(".judged-all")).to_have_text("6")
    expect(rows.nth(0).locator(".judged-human")).to_have_text("3")
    expect(rows.nth(1).locator(".judged-all")).to_have_text("4")
    # Two disagreements, inline, each with both verdicts.
    items = page.locator("#disagreements .disagree-item")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("v1 thinks keep")
    expect(items.first).to_contain_text("v2 thinks reject")  # the one a person decided comes first
    # The prompts side by side: the word only B has is marked on B's side.
    expect(page.locator(".prompt-diff ins").first).to_have_text("everyday")
    expect(page.locator(".compare-prompts")).to_contain_text("the same in both")  # the user template
    expect(page.locator('#cost tr[data-side="A"] .cost-total')).to_have_text("$0.0060")
    expect(page.locator('#cost tr[data-side="B"] .cost-total')).to_have_text("$0.0080")
    # "Only by A" opens exactly the two images B never judged.
    expect(page.locator("#only-a")).to_have_text("2")
    page.click("#only-a")
    expect(page).to_have_url(re.compile(rf"verdict={v1.pk}%3Ajudged&verdict={v2.pk}%3Anone"))
    expect(page.locator("#grid .card")).to_have_count(2)
    assert set(page.locator("#grid .card").evaluate_all("cards => cards.map(c => Number(c.dataset.id))")) == {
        images[4].pk, images[5].pk}
    expect(page.locator(".toolbar .chip", has_text=f"not judged by prompt version #{v2.pk}")).to_be_visible()
    page.go_back()
    expect(page.locator("#only-b")).to_have_text("0")
    assert page.js_errors == []
