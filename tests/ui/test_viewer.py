"""The review viewer's page and its JSON feed: the gallery's filter and order, cursors that lead back to
the same place in the gallery, and a side panel with every crawled or model-written value escaped."""
import pytest

from crawl.models import Source
from curation import gallery
from tests.factories import image_row, stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


def test_items_follow_the_gallery_filter_and_order_in_batches(client_in):
    rows = [image_row(i, vlm_score=i / 100, auto_decision="keep" if i % 2 else "reject") for i in range(30)]
    kept = sorted((r for r in rows if r.auto_decision == "keep"), key=lambda r: -r.vlm_score)
    first = client_in.get("/viewer/items/?final=keep&sort=-vlm&n=10").json()
    assert [item["id"] for item in first["items"]] == [r.pk for r in kept[:10]]
    assert first["next"] == first["items"][-1]["cursor"]
    second = client_in.get(f"/viewer/items/?final=keep&sort=-vlm&n=10&after={first['next']}").json()
    assert [item["id"] for item in second["items"]] == [r.pk for r in kept[10:15]]
    assert second["next"] is None
    item = second["items"][0]
    assert item["full_url"] == f"/images/{item['id']}/full"
    assert item["decide_url"] == f"/images/{item['id']}/decide/"


def test_each_item_links_back_to_the_gallery_starting_at_that_image(client_in):
    rows = [image_row(i) for i in range(70)]
    items = client_in.get("/viewer/items/?sort=old&n=24&after=" + str(rows[39].pk)).json()["items"]
    assert items[0]["id"] == rows[40].pk
    for item in (items[0], items[5]):
        url = item["gallery_url"]
        path, _, anchor = url.partition("#")
        assert anchor == f"card-{item['id']}"
        page = client_in.get(path)
        assert page.status_code == 200
        first, _ = gallery.page(path.partition("?")[2])
        assert first[0].pk == item["id"]
        assert f'id="card-{item["id"]}"' in page.content.decode()


def test_side_panel_shows_scores_reason_tags_group_and_sources_escaped(client_in):
    img = stored_image(1, auto_decision="keep", vlm_score=0.8, clip_indoor_margin=0.25, clip_moderate_margin=0.1)
    img.auto_reason = HOSTILE
    img.dup_group = img
    img.save()
    twin = stored_image(2)
    twin.dup_group = img
    twin.save()
    Source.objects.create(image=img, provider="baidu", query="凌乱的卧室", url="javascript:alert(1)",
                          title=HOSTILE, outcome="stored")
    pv = PromptVersion.objects.create(name="v3", system_text="s", user_template="u", content_hash="c" * 64)
    VlmVerdict.objects.create(image=img, prompt_version=pv, backend="openai", model="gpt-4.1-mini",
                              decision="keep", score=0.8, reason="cluttered desk " + HOSTILE,
                              tags=[HOSTILE, "bedroom"])
    items = client_in.get(f"/viewer/items/?group={img.pk}&sort=old").json()["items"]
    assert [item["id"] for item in items] == [img.pk, twin.pk]
    panel = items[0]["panel"]
    assert "0.250" in panel and "0.80" in panel and "cluttered desk" in panel and "bedroom" in panel
    assert f"Group #{img.pk}, 2 images" in panel and "凌乱的卧室" in panel and "Baidu" in panel
    assert "<script>" not in panel and "<img src=x" not in panel
    assert ESCAPED in panel
    assert 'href="javascript:' not in panel


def test_viewer_page_carries_the_filter_and_a_bad_filter_is_a_400(client_in):
    page = client_in.get("/viewer/?final=keep&sort=old&after=5")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-qs="final=keep&amp;sort=old"' in html and 'data-after="5"' in html
    assert 'href="/?final=keep&amp;sort=old&amp;after=5"' in html
    assert client_in.get("/viewer/?vlm_min=abc").status_code == 400
    assert client_in.get("/viewer/items/?vlm_min=abc").status_code == 400
    assert client_in.get("/viewer/items/?n=x").status_code == 400


def test_gallery_links_to_the_viewer_with_its_filter(client_in):
    html = client_in.get("/?final=keep&sort=old").content.decode()
    assert 'href="/viewer/?final=keep&amp;sort=old"' in html


def test_viewer_needs_sign_in(client):
    assert client.get("/viewer/").status_code == 302
    assert client.get("/viewer/items/").status_code == 302


def test_viewer_can_start_at_an_image_in_a_score_sort(client_in):
    rows = [image_row(i, vlm_score=(i % 7) / 10) for i in range(20)]
    ordered = sorted(rows, key=lambda r: (-r.vlm_score, -r.pk))
    target = ordered[9]
    html = client_in.get(f"/viewer/?sort=-vlm&at={target.pk}").content.decode()
    after = html.split('data-after="')[1].split('"')[0]
    items = client_in.get(f"/viewer/items/?sort=-vlm&after={after}&n=2").json()["items"]
    assert [item["id"] for item in items] == [ordered[9].pk, ordered[10].pk]
    assert 'data-after=""' in client_in.get(f"/viewer/?sort=-vlm&at={ordered[0].pk}").content.decode()
    assert client_in.get("/viewer/?at=x").status_code == 400
