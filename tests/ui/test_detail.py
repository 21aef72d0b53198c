"""Image detail: everything known about one image, escaped, with next/previous inside the filter."""
import pytest

from crawl.models import Source
from curation import review
from curation.models import FilterScore
from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


@pytest.fixture
def detailed(user):
    img = stored_image(1, auto_decision="keep", vlm_score=0.8, clip_indoor_margin=0.2, uncalibrated=True)
    img.auto_reason = HOSTILE
    img.dup_group = img
    img.save()
    twin = stored_image(2, auto_decision="reject")
    twin.dup_group = img
    twin.save()
    Source.objects.create(image=img, provider="baidu", query="凌乱的卧室", url="https://img.example/a.jpg",
                          page_url="javascript:alert(1)", title=HOSTILE, rank=3, outcome="stored")
    Source.objects.create(image=img, provider="url_list", url="http://img.example/b.jpg", outcome="duplicate",
                          reason="same sha256")
    FilterScore.objects.create(image=img, scorer_key="clip:ViT-B-32:none:v1",
                               scores={"a messy lived-in room": 0.31, "items": 0.12}, indoor_margin=0.2,
                               moderate_margin=0.05, object_count=7, passed=True, uncalibrated=True)
    pv = PromptVersion.objects.create(name="v3", system_text="s", user_template="u", content_hash="c" * 64)
    VlmVerdict.objects.create(image=img, prompt_version=pv, backend="openai", model="gpt-4.1-mini",
                              decision="keep", score=0.8, reason=HOSTILE, tags=[HOSTILE, "bedroom"],
                              raw_response='{"decision": "keep", "note": "' + HOSTILE + '"}', latency_ms=812,
                              input_tokens=900, output_tokens=40)
    VlmVerdict.objects.create(image=img, prompt_version=pv, backend="ollama", model="qwen2.5vl",
                              error="connection refused")
    review.set_decision([img.pk], "reject", user, note="showroom")
    return img, twin


def test_detail_shows_sources_scores_verdicts_history_and_group(client_in, detailed):
    img, twin = detailed
    response = client_in.get(f"/images/{img.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'src="/images/{img.pk}/full"' in html
    assert "96 × 72 px" in html and img.sha256[:12] in html
    # sources
    assert "Baidu keyword search" in html and "凌乱的卧室" in html and "same sha256" in html
    assert 'href="https://img.example/a.jpg"' in html and 'rel="noopener noreferrer nofollow"' in html
    # scores: the per-prompt table survives a prompt named "items"; the uncalibrated flag shows
    assert "clip:ViT-B-32:none:v1" in html and "a messy lived-in room" in html and "0.3100" in html
    assert "uncalibrated" in html
    # verdicts with the raw response folded away
    assert "gpt-4.1-mini" in html and "812 ms" in html and "900 in / 40 out tokens" in html
    assert "<details><summary>Raw response</summary>" in html
    assert "connection refused" in html and "qwen2.5vl" in html
    # history and group
    assert "showroom" in html and "rita" in html
    assert f'href="/images/{twin.pk}/"' in html and f"/?group={img.pk}" in html
    # decision controls
    assert 'id="detail-keep"' in html and 'id="detail-reject"' in html


def test_detail_escapes_crawled_and_model_text(client_in, detailed):
    img, _ = detailed
    html = client_in.get(f"/images/{img.pk}/").content.decode()
    assert "<script>alert" not in html and "onerror=alert(1)>" not in html
    assert html.count(ESCAPED) >= 5  # auto reason, title, verdict reason, tag, raw response
    assert 'href="javascript:' not in html  # a crawled page URL is shown, never linked
    assert "hx-disable" in html


def test_detail_prev_next_within_the_filter(client_in):
    a = stored_image(1, auto_decision="keep", vlm_score=0.9)
    b = stored_image(2, auto_decision="reject", vlm_score=0.5)
    c = stored_image(3, auto_decision="keep", vlm_score=0.1)
    html = client_in.get(f"/images/{c.pk}/?final=keep&sort=-vlm").content.decode()
    assert f'data-prev="/images/{a.pk}/?final=keep&amp;sort=-vlm"' in html
    assert "data-next" not in html
    html = client_in.get(f"/images/{b.pk}/").content.decode()  # newest first by default
    assert f'data-prev="/images/{c.pk}/"' in html and f'data-next="/images/{a.pk}/"' in html
    assert f'href="/?final=keep&amp;sort=-vlm#card-{c.pk}"' in client_in.get(
        f"/images/{c.pk}/?final=keep&sort=-vlm").content.decode()


def test_detail_bad_filter_still_shows_the_image(client_in):
    a = stored_image(1)
    response = client_in.get(f"/images/{a.pk}/?final=soon")
    assert response.status_code == 200
    assert "Bad filter: final" in response.content.decode()


def test_detail_missing_image_is_404(client_in):
    assert client_in.get("/images/424242/").status_code == 404
