"""Prompt-version comparison: the agreement table, metrics against people, the chart and its links."""
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import User

from curation.gallery import filter_images
from tests.factories import image_row, prompt_version, verdict
from vlm import compare as cmp
from vlm.models import VlmVerdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(request):
    # A test may name version A (indirect parametrisation): versions are immutable once made.
    a, b = prompt_version(getattr(request, "param", "v1")), prompt_version("v2")
    # (A decision, A score, B decision, B score, human)
    plan = [
        ("keep", 0.9, "keep", 0.8, "keep"),      # TP for both
        ("keep", 0.4, "keep", 0.7, "reject"),    # FP for both; A drops out at threshold 0.5
        ("keep", 0.7, "reject", 0.2, "keep"),    # A TP, B FN
        ("reject", 0.1, "keep", 0.9, "keep"),    # A FN, B TP
        ("reject", 0.2, "reject", 0.1, None),    # agree, no human
        ("keep", 0.8, None, None, None),         # only A: B errored
        ("reject", 0.3, "absent", None, None),   # only A: B never judged
    ]
    images = []
    for i, (da, sa, db, sb, human) in enumerate(plan, start=1):
        img = image_row(i, human_decision=human)
        images.append(img)
        verdict(img, a, da, sa)
        if db == "absent":
            continue
        verdict(img, b, db, sb, error="" if db else "timeout")
    only_b = image_row(99)
    verdict(only_b, b, "keep", 0.9)
    # Another model under A must not leak into the m1 comparison.
    verdict(images[0], a, "reject", 0.1, model="other")
    return a, b, images, only_b


def test_agreement_table_and_rate(data):
    a, b, _, _ = data
    c = cmp.compare(cmp.Side(a, "m1"), cmp.Side(b, "m1"))
    assert c.table == {"keep": {"keep": 2, "reject": 1}, "reject": {"keep": 1, "reject": 1}}
    assert c.both == 5
    assert c.agreement == pytest.approx(3 / 5)
    assert c.only_a == 2  # B's error is not a vote
    assert c.only_b == 1


def test_metrics_against_human_decisions(data):
    a, b, _, _ = data
    c = cmp.compare(cmp.Side(a, "m1"), cmp.Side(b, "m1"))
    # A: TP 2 (img1, img3), FP 1 (img2), FN 1 (img4)
    assert (c.metrics_a.tp, c.metrics_a.fp, c.metrics_a.fn, c.metrics_a.tn) == (2, 1, 1, 0)
    assert c.metrics_a.precision == pytest.approx(2 / 3)
    assert c.metrics_a.recall == pytest.approx(2 / 3)
    assert c.metrics_a.f1 == pytest.approx(2 / 3)
    # B: TP 2 (img1, img4), FP 1 (img2), FN 1 (img3)
    assert (c.metrics_b.tp, c.metrics_b.fp, c.metrics_b.fn) == (2, 1, 1)


def test_threshold_curve_moves_with_min_score(data):
    a, b, _, _ = data
    c = cmp.compare(cmp.Side(a, "m1"), cmp.Side(b, "m1"))
    curve = {round(t, 2): (p, r) for t, p, r in c.curve_a}
    assert curve[0.0] == pytest.approx((2 / 3, 2 / 3))
    # At 0.5 the FP (score 0.4) drops out: precision 1, recall unchanged.
    assert curve[0.5] == pytest.approx((1.0, 2 / 3))
    # At 0.8 only img1 (0.9) is still keep.
    assert curve[0.8] == pytest.approx((1.0, 1 / 3))
    # Above every score nothing is predicted keep: precision undefined, recall 0.
    assert curve[1.0][0] is None and curve[1.0][1] == 0
    chart = cmp.chart(c)
    assert not chart["empty"] and len(chart["series"]) == 4
    assert all(line.count(",") >= 2 for s in chart["series"] for line in s["lines"])


def test_cell_links_open_exactly_those_images_in_the_gallery(data):
    a, b, images, _ = data
    side_a, side_b = cmp.Side(a, "m1"), cmp.Side(b, "m1")
    url = cmp.cell_url((side_a, "keep"), (side_b, "reject"))
    assert urlsplit(url).path == "/"
    params = parse_qsl(urlsplit(url).query)
    assert ("verdict", f"{a.pk}:keep") in params and ("verdict", f"{b.pk}:reject") in params
    assert ("model", "m1") in params
    ids = set(filter_images(urlsplit(url).query).values_list("pk", flat=True))
    assert ids == {images[2].pk}
    tp = cmp.cell_url((side_b, "keep"), human="keep")
    assert set(filter_images(urlsplit(tp).query).values_list("pk", flat=True)) == {images[0].pk, images[3].pk}


def test_compare_page_requires_login(client):
    response = client.get("/vlm/compare/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("data", ["<script>alert(1)</script>"], indirect=True)
def test_compare_page_shows_table_metrics_chart_and_escapes_names(client, data):
    a, b, _, _ = data
    user = User.objects.create_user("rev", password="pw-12345678")
    client.force_login(user)
    response = client.get("/vlm/compare/", {"a": a.pk, "b": b.pk, "model_a": "openai:m1", "model_b": "m1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="agreement-rate">60' in html
    assert 'data-cell="keep-reject">1</a>' in html
    assert f"verdict={a.pk}%3Akeep&amp;verdict={b.pk}%3Areject" in html
    assert "<svg" in html and "<polyline" in html
    assert "0.667" in html  # A's precision


def test_compare_page_defaults_to_newest_two_versions_and_most_used_model(client, data):
    a, b, _, _ = data
    client.force_login(User.objects.create_user("rev", password="pw-12345678"))
    response = client.get("/vlm/compare/")
    assert response.status_code == 200
    assert response.context["side_a"].prompt_version == a and response.context["side_b"].prompt_version == b
    assert (response.context["side_a"].backend, response.context["side_a"].model) == ("openai", "m1")


def test_compare_page_without_versions_says_so(client):
    client.force_login(User.objects.create_user("rev", password="pw-12345678"))
    response = client.get("/vlm/compare/")
    assert response.status_code == 200
    assert b"At least two prompt versions" in response.content


def test_one_model_name_under_two_backends_is_two_sides(client, data):
    a, b, images, _ = data
    # The same model name served by a second backend: its verdicts must not be counted with openai's.
    for img in images[:3]:
        VlmVerdict.objects.create(image=img, prompt_version=a, backend="ollama", model="m1", decision="reject")
    openai_a, ollama_a, side_b = cmp.Side(a, "m1", "openai"), cmp.Side(a, "m1", "ollama"), cmp.Side(b, "m1", "openai")
    assert cmp.compare(openai_a, side_b).both == 5  # as before the ollama verdicts
    assert cmp.compare(ollama_a, side_b).table == {"keep": {"keep": 0, "reject": 0}, "reject": {"keep": 2, "reject": 1}}
    assert cmp.models_for(a)[:2] == [("openai", "m1"), ("ollama", "m1")]
    url = cmp.cell_url((ollama_a, "reject"), (side_b, "keep"))
    assert ("backend", "ollama") not in parse_qsl(urlsplit(url).query)  # A and B differ in backend
    url = cmp.cell_url((ollama_a, "reject"))
    assert set(filter_images(urlsplit(url).query).values_list("pk", flat=True)) == {i.pk for i in images[:3]}

    client.force_login(User.objects.create_user("rev", password="pw-12345678"))
    response = client.get("/vlm/compare/", {"a": a.pk, "b": b.pk, "model_a": "ollama:m1", "model_b": "openai:m1"})
    assert response.status_code == 200
    assert (response.context["side_a"].backend, response.context["comparison"].both) == ("ollama", 3)
    html = response.content.decode()
    assert '<option value="ollama:m1" selected>ollama / m1</option>' in html
    assert '<option value="openai:m1">openai / m1</option>' in html


def test_compare_page_ignores_digits_that_are_not_ascii(client, data):
    client.force_login(User.objects.create_user("rev", password="pw-12345678"))
    assert client.get("/vlm/compare/", {"a": "²", "b": "³"}).status_code == 200
