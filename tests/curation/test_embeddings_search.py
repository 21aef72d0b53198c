"""Search in the gallery: q= (text) and like= (more like this) rank by CLIP similarity, with the other filters."""
import numpy as np
import pytest

from curation import embeddings, gallery, search, vector_index
from curation.models import ContentDuplicate, Image
from tests.factories import image_row

pytestmark = pytest.mark.django_db

KEY = "ViT-B-32:none"
QUERY = "a cluttered desk with cables and mugs"


@pytest.fixture(autouse=True)
def _vector_dir(settings, tmp_path):
    settings.SCENEIMG_VECTOR_DIR = str(tmp_path / "vectors")
    vector_index._loaded.clear()
    search._cache.clear()


@pytest.fixture
def embedded():
    """40 images with embeddings; every third is kept by a person, the rest undecided."""
    rng = np.random.default_rng(11)
    images = [image_row(n, **({"human_decision": "keep"} if n % 3 == 0 else {})) for n in range(1, 41)]
    vecs = rng.normal(size=(40, 512))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float16)
    embeddings.store(KEY, [im.pk for im in images], vecs)
    vector_index.sync(KEY)
    return {im.pk: v.astype(np.float32) for im, v in zip(images, vecs, strict=True)}


def exact_order(vectors, query, ids=None):
    ids = list(vectors) if ids is None else ids
    return sorted(ids, key=lambda pk: (-float(vectors[pk] @ query), pk))


def test_text_search_ranks_like_exact_cosine_and_pages_by_relevance(embedded, settings):
    settings.SCENEIMG_SEARCH_RESULTS = 25
    expected = exact_order(embedded, search.text_vector(QUERY))[:25]
    first, cursor = gallery.page({"q": QUERY}, size=10)
    assert [im.pk for im in first] == expected[:10]
    shown = [im.pk for im in first]
    while cursor:
        more, cursor = gallery.page({"q": QUERY, "after": cursor}, size=10)
        shown += [im.pk for im in more]
    assert shown == expected
    # Previous/next on the detail page follow the same order.
    assert gallery.neighbours({"q": QUERY}, Image.objects.get(pk=expected[1])) == (expected[0], expected[2])


def test_search_combines_with_filters_and_looks_further_when_they_are_selective(embedded, settings):
    settings.SCENEIMG_SEARCH_RESULTS = 5
    kept = [pk for pk in embedded if Image.objects.get(pk=pk).final_decision == "keep"]
    expected = exact_order(embedded, search.text_vector(QUERY), kept)[:5]
    images, _ = gallery.page({"q": QUERY, "final": "keep"})
    assert [im.pk for im in images] == expected
    # An explicit sort orders the same hits another way.
    by_id = [im.pk for im in gallery.page({"q": QUERY, "final": "keep", "sort": "old"})[0]]
    assert by_id == sorted(expected)
    assert gallery.estimate_count({"q": QUERY, "final": "keep"}) == (5, True)


def test_more_like_this_ranks_by_the_image_embedding_and_leaves_it_out(embedded, settings):
    settings.SCENEIMG_SEARCH_RESULTS = 8
    target = next(iter(embedded))
    others = [pk for pk in embedded if pk != target]
    images, _ = gallery.page({"like": target})
    assert [im.pk for im in images] == exact_order(embedded, embedded[target], others)[:8]


def test_search_errors_name_the_field(embedded):
    lonely = image_row(999)
    with pytest.raises(gallery.FilterError, match="like: image #.* has no embedding"):
        gallery.page({"like": lonely.pk})
    with pytest.raises(gallery.FilterError, match="not both"):
        gallery.page({"q": QUERY, "like": lonely.pk})
    with pytest.raises(gallery.FilterError, match="relevance needs a search"):
        gallery.page({"sort": "relevance"})


def test_content_duplicate_filter_uses_the_threshold(embedded, settings):
    a, b, c = list(embedded)[:3]
    ContentDuplicate.objects.bulk_create([
        ContentDuplicate(image_id=a, other_id=b, model_key=KEY, similarity=0.97),
        ContentDuplicate(image_id=b, other_id=a, model_key=KEY, similarity=0.97),
        ContentDuplicate(image_id=c, other_id=a, model_key="another:model", similarity=0.99),
    ])
    settings.SCENEIMG_CONTENT_DUP_THRESHOLD = 0.95
    assert set(gallery.filter_images({"content_dups": "1"}).values_list("pk", flat=True)) == {a, b}
    assert a not in set(gallery.filter_images({"content_dups": "0"}).values_list("pk", flat=True))
    settings.SCENEIMG_CONTENT_DUP_THRESHOLD = 0.98
    assert not gallery.filter_images({"content_dups": "1"}).exists()


def test_detail_page_lists_content_duplicates_and_links_more_like_this(embedded, client, django_user_model):
    a, b = list(embedded)[:2]
    ContentDuplicate.objects.bulk_create([
        ContentDuplicate(image_id=a, other_id=b, model_key=KEY, similarity=0.97),
        ContentDuplicate(image_id=b, other_id=a, model_key=KEY, similarity=0.97)])
    client.force_login(django_user_model.objects.create_user("viewer"))
    html = client.get(f"/images/{a}/").content.decode()
    assert 'id="content-duplicates"' in html and f"/images/{b}/" in html and "0.970" in html
    assert f"?like={a}" in html
