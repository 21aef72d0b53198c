"""Search and the review order in the browser: a description typed in the filter box, "similar" on a
card, and "most useful next" (the learned probability closest to 0.5 first)."""
import re

import numpy as np
import pytest
from playwright.sync_api import expect

from curation import embeddings, search, vector_index
from curation.models import Image
from tests.factories import stored_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY = "ViT-B-32:none"
QUERY = "a cluttered desk with cables and mugs"


@pytest.fixture
def embedded(settings, tmp_path):
    settings.SCENEIMG_VECTOR_DIR = str(tmp_path / "vectors")
    settings.SCENEIMG_SEARCH_RESULTS = 6
    vector_index._loaded.clear()
    search._cache.clear()
    images = [stored_image(700 + i) for i in range(12)]
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(12, 512))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float16)
    embeddings.store(KEY, [im.pk for im in images], vecs)
    vector_index.sync(KEY)
    return {im.pk: v.astype(np.float32) for im, v in zip(images, vecs, strict=True)}


def card_ids(page):
    return [int(x) for x in page.locator("#results article.card").evaluate_all("els => els.map(e => e.dataset.id)")]


def ranked(vectors, query, exclude=()):
    return sorted((pk for pk in vectors if pk not in exclude), key=lambda pk: (-float(vectors[pk] @ query), pk))


def test_typing_a_description_ranks_the_gallery_and_similar_ranks_by_an_image(logged_in_page, embedded):
    page = logged_in_page
    # Loads the CLIP model in this process, which also serves the pages, before the clock starts.
    expected = ranked(embedded, search.text_vector(QUERY))[:6]
    page.goto(f"{page.base_url}/")
    page.fill("#f-q", QUERY)
    page.press("#f-q", "Enter")
    expect(page).to_have_url(re.compile(r"q=a(\+|%20)cluttered(\+|%20)desk"))
    expect(page.locator("#results article.card")).to_have_count(6)
    assert card_ids(page) == expected
    expect(page.locator("#f-sort")).to_have_value("")  # relevance, the search's default

    # The search combines with a filter: only kept images, still by relevance.
    keep = expected[1]
    Image.objects.filter(pk=keep).update(human_decision="keep", final_decision="keep")
    search._cache.clear()
    page.select_option("select[name=final]", "keep")
    expect(page).to_have_url(re.compile(r"final=keep"))
    expect(page.locator("#results article.card")).to_have_count(1)
    assert card_ids(page) == [keep]

    # "similar" on a card: the images most like it, itself left out.
    page.goto(f"{page.base_url}/")
    target = expected[0]
    page.locator(f"#card-{target} a.more-like").click()
    expect(page).to_have_url(re.compile(rf"\?like={target}$"))
    expect(page.locator("#results article.card")).to_have_count(6)
    assert card_ids(page) == ranked(embedded, embedded[target], exclude={target})[:6]
    expect(page.locator("#like-chip")).to_contain_text(f"#{target}")


def test_most_useful_next_puts_the_closest_to_even_first(logged_in_page):
    page = logged_in_page
    probabilities = [0.95, 0.51, 0.1, 0.62, None, 0.3, 0.47]
    images = [stored_image(800 + i) for i in range(len(probabilities))]
    for image, p in zip(images, probabilities, strict=True):
        Image.objects.filter(pk=image.pk).update(learned_keep=p)
    page.goto(f"{page.base_url}/?human=none")
    page.select_option("#f-sort", "uncertain")
    expect(page).to_have_url(re.compile(r"sort=uncertain"))
    order = sorted((im for im, p in zip(images, probabilities, strict=True) if p is not None),
                   key=lambda im: abs(probabilities[images.index(im)] - 0.5))
    expect(page.locator("#results article.card")).to_have_count(len(order))
    assert card_ids(page) == [im.pk for im in order]
