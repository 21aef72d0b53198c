"""The compare page's details: every judged image counted, links for images only one side judged,
disagreements shown inline, the two prompt texts side by side, and what each side cost."""
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User

from curation.gallery import FilterError, filter_images
from tests.factories import image_row, prompt_version, verdict
from tests.ui.test_compare import data  # noqa: F401 (the fixture: seven images judged by v1 and v2)
from vlm import compare as cmp
from vlm.prompt_diff import side_by_side

pytestmark = pytest.mark.django_db


def gallery_ids(url):
    return set(filter_images(urlsplit(url).query).values_list("pk", flat=True))


def test_judged_counts_every_judged_image_not_only_reviewed_ones(data):  # noqa: F811
    a, b, _, _ = data
    c = cmp.compare(cmp.Side(a, "m1"), cmp.Side(b, "m1"))
    # A decided all 7 of its images (4 of them reviewed by a person); B decided 5 + the only-B image
    # and errored once: the error is a call but not a judgement.
    assert (c.usage_a.judged, c.metrics_a.judged) == (7, 4)
    assert (c.usage_b.judged, c.usage_b.calls, c.usage_b.errors) == (6, 7, 1)


def test_only_by_a_and_only_by_b_open_exactly_those_images(data):  # noqa: F811
    a, b, images, only_b = data
    side_a, side_b = cmp.Side(a, "m1"), cmp.Side(b, "m1")
    # images[5]: B errored (not a judgement); images[6]: B never judged it.
    assert gallery_ids(cmp.only_url(side_a, side_b)) == {images[5].pk, images[6].pk}
    assert gallery_ids(cmp.only_url(side_b, side_a)) == {only_b.pk}
    c = cmp.compare(side_a, side_b)
    assert (c.only_a, c.only_b) == (2, 1)  # the counts beside the links agree


def test_verdict_filter_names_what_it_expected(data):  # noqa: F811
    a, _, _, _ = data
    with pytest.raises(FilterError, match=r"verdict: expected PROMPT_VERSION_ID:keep\|reject\|error\|judged\|none"):
        list(filter_images(f"verdict={a.pk}:maybe"))


def test_disagreements_come_with_both_verdicts_people_decided_first(data):  # noqa: F811
    a, b, images, _ = data
    found = cmp.disagreements(cmp.Side(a, "m1"), cmp.Side(b, "m1"))
    assert {d["image"] for d in found} == {images[2].pk, images[3].pk}
    first = found[0]
    assert first["human"] == "keep"
    (name_a, va), (name_b, vb) = first["pairs"]
    assert (name_a, name_b) == ("A", "B") and va.decision != vb.decision
    assert first["thumb_url"] == f"/images/{first['image']}/thumb"
    # An agreeing pair never appears; the limit holds.
    assert len(cmp.disagreements(cmp.Side(a, "m1"), cmp.Side(b, "m1"), limit=1)) == 1


def test_side_by_side_marks_changed_words_added_and_removed_lines():
    diff = side_by_side("Judge the room.\nSame line\nOld rule", "Judge the kitchen.\nSame line\nNew rule\nExtra")
    kinds = [row["kind"] for row in diff["rows"]]
    assert kinds == ["changed", "equal", "changed", "added"]
    first = diff["rows"][0]
    assert [t for t, changed in first["left"] if changed] == ["room"]
    assert [t for t, changed in first["right"] if changed] == ["kitchen"]
    assert "".join(t for t, _ in first["right"]) == "Judge the kitchen."  # nothing lost in the split
    assert diff["rows"][3]["left"] is None and diff["rows"][3]["right_no"] == 4
    assert diff["changed"] == 3 and not diff["same"]
    assert side_by_side("a\nb", "a\nb")["same"]
    removed = side_by_side("a\nb", "a")
    assert [row["kind"] for row in removed["rows"]] == ["equal", "removed"]


def test_compare_page_shows_links_costs_disagreements_and_escaped_prompts(client):
    a = prompt_version("v1", system_text="Judge the <b>room</b>.\nKeep tidy rooms.")
    b = prompt_version("v2", system_text="Judge the <b>kitchen</b>.\nKeep tidy rooms.")
    for i, (da, db) in enumerate([("keep", "reject"), ("keep", "keep"), ("reject", None)], start=1):
        img = image_row(500 + i)
        verdict(img, a, da, 0.5, cost_usd=0.0100000001, input_tokens=100, output_tokens=10)
        if db:
            verdict(img, b, db, 0.6, cost_usd=0.02, reason="<i>clutter</i> on the floor")
    client.force_login(User.objects.create_user("rev", password="pw-12345678"))
    html = client.get("/vlm/compare/", {"a": a.pk, "b": b.pk}).content.decode()
    assert 'id="only-a" href="/?model=m1&amp;backend=openai&amp;verdict=' in html
    assert f"verdict={a.pk}%3Ajudged&amp;verdict={b.pk}%3Anone" in html
    assert '<td class="judged-all">3</td>' in html
    # Costs rounded for people: 3 x 0.0100000001 -> $0.0300, $0.01000 a judged image; B $0.0400.
    assert '<td class="cost-total">$0.0300</td>' in html and '<td class="cost-per-image">$0.01000</td>' in html
    assert '<td class="cost-total">$0.0400</td>' in html
    assert 'id="disagreements"' in html and "&lt;i&gt;clutter&lt;/i&gt; on the floor" in html
    # The prompt texts, escaped, with the changed word marked on each side.
    assert "&lt;b&gt;<del>room</del>&lt;/b&gt;" in html and "&lt;b&gt;<ins>kitchen</ins>&lt;/b&gt;" in html
    assert "<b>room</b>" not in html
    assert "1 line differs" in html and "the same in both" in html
