"""The gallery's score sorts read ids first, then the rows (curation.querysets.first_rows): the pages
must be exactly what one ordered query gives, page after page, and the planner setting it changes
for the walk must not outlive it. Timings are in bench/gallery_latency.py."""
import pytest
from django.db import connection

from curation import gallery, querysets
from curation.models import Image
from tests.factories import image_row, prompt_version, verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored():
    pv = prompt_version()
    for n in range(1, 41):
        image = image_row(n, auto_decision="keep" if n % 3 else "reject")
        # ties on purpose (n // 4), so the id tie-break decides the order within each score
        Image.objects.filter(pk=image.pk).update(vlm_score=(n // 4) / 10 if n % 5 else None)
        verdict(image, pv, "keep", 0.5, tags=["render"] if n % 2 else ["kitchen"])


def walk(querystring, size):
    """Every id the gallery shows for `querystring`, following its next-page cursors."""
    ids, cursor = [], None
    while True:
        rows, cursor = gallery.page(querystring + (f"&after={cursor}" if cursor else ""), size=size)
        ids += [r.pk for r in rows]
        if cursor is None:
            return ids


@pytest.mark.parametrize("querystring", ["sort=-vlm&tag=render", "sort=vlm&final=keep", "sort=-vlm",
                                         "sort=-vlm&tag=nosuchtag"])
def test_score_sorted_pages_are_what_one_ordered_query_gives(scored, querystring):
    expected = list(gallery.filter_images(querystring).values_list("pk", flat=True))
    assert walk(querystring, size=7) == expected
    if "nosuchtag" not in querystring:
        assert len(expected) > 7  # several pages were walked


def test_first_rows_keeps_the_order_and_the_limit(scored):
    qs = gallery.filter_images("sort=-vlm")
    rows = querysets.first_rows(qs, 5)
    assert [r.pk for r in rows] == list(qs.values_list("pk", flat=True)[:5])
    assert querysets.first_rows(qs.none(), 5) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a Postgres planner setting")
def test_the_serial_plan_setting_does_not_outlive_the_walk(scored):
    def setting():
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            return cursor.fetchone()[0]

    before = setting()
    gallery.page("sort=-vlm&tag=render")
    assert before != "0" and setting() == before
