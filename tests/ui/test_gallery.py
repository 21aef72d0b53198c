"""Gallery: access, filters from the querystring, keyset pages, htmx partials, count, media, escaping."""
import pytest

from crawl.models import Source
from curation import gallery
from curation.models import Run
from tests.factories import stored_image
from vlm.models import PromptVersion, VlmVerdict

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def ids(qs):
    return [img.pk for img in qs]


@pytest.fixture
def scene():
    """A small world: decisions, scores, sources, verdicts, a duplicate group, an uncalibrated image."""
    run = Run.objects.create(kind=Run.Kind.CRAWL, label="kitchens")
    pv1 = PromptVersion.objects.create(name="v1", system_text="s", user_template="u", content_hash="1" * 64)
    pv2 = PromptVersion.objects.create(name="v2", system_text="s", user_template="u", content_hash="2" * 64)
    a = stored_image(1, auto_decision="keep", clip_indoor_margin=0.30, clip_moderate_margin=0.10, vlm_score=0.9)
    b = stored_image(2, auto_decision="reject", clip_indoor_margin=-0.10, vlm_score=0.2, uncalibrated=True)
    c = stored_image(3, auto_decision="keep", human_decision="reject", clip_indoor_margin=0.05, vlm_score=0.6)
    d = stored_image(4)  # undecided, unscored
    e = stored_image(5, auto_decision="reject", human_decision="reject", vlm_score=0.6)
    c.dup_group = c
    c.save()
    d.dup_group = c
    d.save()
    Source.objects.create(image=a, run=run, provider="baidu", query="messy kitchen", outcome="stored")
    Source.objects.create(image=b, provider="folder", path="/data/x.jpg", outcome="stored")
    Source.objects.create(image=c, run=run, provider="baidu_similar", seed_image=a, outcome="stored")
    VlmVerdict.objects.create(image=a, prompt_version=pv1, backend="openai", model="m1", decision="keep",
                              score=0.9, tags=["kitchen", "cluttered"])
    VlmVerdict.objects.create(image=a, prompt_version=pv2, backend="openai", model="m1", decision="reject",
                              score=0.3, tags=["kitchen"])
    VlmVerdict.objects.create(image=b, prompt_version=pv1, backend="openai", model="m2", decision=None,
                              error="timeout", tags=[])
    VlmVerdict.objects.create(image=c, prompt_version=pv1, backend="openai", model="m1", decision="reject",
                              score=0.6, tags=["showroom"])
    return {"run": run, "pv1": pv1, "pv2": pv2, "a": a, "b": b, "c": c, "d": d, "e": e}


# --- access ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/", "/count/", "/images/1/", "/images/1/thumb", "/images/1/full"])
def test_login_required(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_login_page_and_sign_in(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="username"' in page.content
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita-123", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_base_template_sets_csrf_header_and_pinned_htmx(client_in):
    html = client_in.get("/").content.decode()
    assert "hx-headers='{\"x-csrftoken\": \"" in html
    assert "/static/vendor/htmx.min.js" in html
    assert 'href="/runs/"' in html and 'href="/vlm/compare/"' in html and 'href="/export/"' in html
    assert "/admin/" not in html  # not staff


def test_admin_link_for_staff(client, user):
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert "/admin/" in client.get("/").content.decode()


# --- filters ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("querystring, expected", [
    ("", "edcba"),
    ("final=keep", "a"),
    ("final=reject", "ecb"),
    ("final=none", "d"),
    ("auto=reject", "eb"),
    ("human=none", "dba"),
    ("human=reject", "ec"),
    ("disagree=1", "c"),
    ("run={run}", "ca"),
    ("run={run}&provider=baidu", "a"),
    ("provider=folder", "b"),
    ("query=messy+kitchen", "a"),
    ("seed={a}", "c"),
    ("indoor_min=0&indoor_max=0.1", "c"),
    ("indoor_min=0.2", "a"),
    ("vlm_min=0.5&vlm_max=0.7", "ec"),
    ("pv={pv2}", "a"),
    ("pv={pv1}&model=m2", "b"),
    ("verdict={pv1}:keep&verdict={pv2}:reject", "a"),
    ("verdict={pv1}:error", "b"),
    ("verdict={pv1}:reject&human=reject", "c"),
    ("tag=kitchen", "a"),
    ("tag=kitchen&tag=cluttered&pv={pv1}", "a"),
    ("tag=cluttered&pv={pv2}", ""),
    ("tag=showroom", "c"),
    ("tag=Kitchen&tag=CLUTTERED", "a"),  # tags are stored lower-case; the filter is case-blind
    ("seed=²", ""),  # a superscript digit is not an id: it is matched as a seed file name
    ("dups=1", "dc"),
    ("dups=0", "eba"),
    ("group={c}", "dc"),
    ("uncalibrated=1", "b"),
    ("uncalibrated=0&final=reject", "ec"),
    ("sort=-vlm", "aecb"),
    ("sort=vlm", "bcea"),
    ("sort=old", "abcde"),
    ("sort=-indoor", "acb"),
    ("final=&auto=&run=", "edcba"),  # empty form fields are ignored
])
def test_filters(scene, querystring, expected):
    fmt = {k: v.pk for k, v in scene.items()}
    got = ids(gallery.filter_images(querystring.format(**fmt)))
    assert got == [scene[ch].pk for ch in expected]


@pytest.mark.parametrize("querystring, field", [
    ("final=maybe", "final"), ("vlm_min=high", "vlm_min"), ("vlm_min=nan", "vlm_min"), ("run=x", "run"),
    ("provider=google", "provider"), ("verdict=keep", "verdict"), ("verdict=²:keep", "verdict"), ("dups=2", "dups"), ("sort=random", "sort"),
    ("after=zz", "after"),
])
def test_bad_filter_values_name_the_field(client_in, querystring, field):
    with pytest.raises(gallery.FilterError, match=field):
        gallery.page(querystring)
    response = client_in.get("/?" + querystring)
    assert response.status_code == 400
    assert f"Bad filter: {field}" in response.content.decode()


def test_filter_images_accepts_dict_and_querydict(scene):
    assert ids(gallery.filter_images({"final": "keep"})) == [scene["a"].pk]
    assert ids(gallery.filter_images({"human": ["reject"], "sort": "old"})) == [scene["c"].pk, scene["e"].pk]
    assert set(gallery.fields()) >= {"run", "provider", "query", "seed", "final", "auto", "human", "disagree",
                                          "vlm_min", "pv", "tag", "dups", "uncalibrated", "sort"}


def test_gallery_page_shows_cards_with_decision_and_scores(client_in, scene):
    html = client_in.get("/?final=keep").content.decode()
    a = scene["a"]
    assert f'id="card-{a.pk}"' in html
    assert f'id="card-{scene["b"].pk}"' not in html
    assert "in 0.300" in html and "mod 0.100" in html and "vlm 0.90" in html
    assert f'/images/{a.pk}/thumb' in html
    assert f'href="/images/{a.pk}/?final=keep"' in html  # the detail keeps the filter for next/previous
    assert "final: keep" in html  # active filter chip


# --- keyset pagination ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sort", list(gallery.SORTS))
def test_keyset_pages_visit_every_row_once_in_order(sort):
    # Many ties on the score, so the id tiebreak matters; some rows have no score at all.
    rows = []
    for i in range(23):
        rows.append(stored_image(100 + i, vlm_score=[0.1, 0.5, 0.5, 0.9][i % 4] if i % 5 else None,
                               clip_indoor_margin=(i % 3) / 10, clip_moderate_margin=-(i % 2) / 10))
    expected = ids(gallery.filter_images({"sort": sort}))
    seen, after = [], None
    for _ in range(20):
        params = {"sort": sort, **({"after": after} if after else {})}
        images, after = gallery.page(params, size=4)
        seen += ids(images)
        if after is None:
            break
    assert seen == expected
    assert len(set(seen)) == len(seen)
    if sort in ("new", "old"):
        assert len(seen) == 23
    elif "vlm" in sort:
        assert len(seen) == sum(1 for i in range(23) if i % 5)


def test_neighbours_follow_the_filter_and_sort(scene):
    a, c, e = scene["a"], scene["c"], scene["e"]
    assert gallery.neighbours("sort=-vlm", e) == (a.pk, c.pk)
    assert gallery.neighbours("sort=-vlm", a) == (None, e.pk)
    assert gallery.neighbours("final=reject", c) == (e.pk, scene["b"].pk)
    assert gallery.neighbours("sort=vlm", scene["d"]) == (None, None)  # no score: not in that list


def test_htmx_infinite_scroll_returns_only_cards_and_next_sentinel(client_in, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE_SIZE", 3)
    made = [stored_image(200 + i) for i in range(7)]
    first = client_in.get("/").content.decode()
    assert "<html" in first and 'hx-trigger="intersect once"' in first
    newest = sorted((m.pk for m in made), reverse=True)
    cursor = newest[2]
    response = client_in.get(f"/?after={cursor}", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and 'id="grid"' not in html
    assert [f'id="card-{pk}"' in html for pk in newest] == [False] * 3 + [True] * 3 + [False]
    assert f'hx-get="/?after={newest[5]}"' in html and 'hx-trigger="intersect once"' in html
    last = client_in.get(f"/?after={newest[5]}", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="card-{newest[6]}"' in last and "intersect once" not in last and "End of results" in last


def test_htmx_filter_swaps_results_block(client_in, scene):
    response = client_in.get("/?final=keep", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert 'id="filter-form"' not in html and f'id="card-{scene["a"].pk}"' in html
    assert 'value="final=keep"' in html  # the current filter rides along with review requests


def test_htmx_filter_change_keeps_the_filter_chips(client_in, scene):
    response = client_in.get("/?final=keep&tag=kitchen", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results")
    html = response.content.decode()
    assert '<a class="chip" href="/?tag=kitchen"' in html and ">final: keep <span" in html
    assert '<a class="chip" href="/?final=keep"' in html and ">tag: kitchen <span" in html


@pytest.mark.parametrize("query,label,without", [
    ("human=none&final=keep", "human: undecided", "final=keep"),
    ("dups=1", "has near-duplicates", ""),
    ("disagree=0", "human and auto agree", ""),
    ("indoor_min=0.1&sort=old", "indoor margin ≥ 0.1", "sort=old"),
    ("verdict=2:keep&verdict=3:reject", "prompt version #2 says keep", "verdict=3%3Areject"),
    ("tag=a&tag=b", "tag: a", "tag=b"),
])
def test_each_chip_says_its_filter_in_words_and_removes_only_itself(client_in, scene, query, label, without):
    html = client_in.get(f"/?{query}&after=5").content.decode()
    href = "/" + (f"?{without}" if without else "")
    assert f'<a class="chip" href="{href}" title="Remove this filter' in html.replace("&amp;", "&")
    assert f">{label} <span" in html


def test_filter_form_keeps_an_old_run_and_every_tag(client_in, scene):
    old = scene["run"]
    for n in range(100):  # push the filtered run out of the newest 100
        Run.objects.create(kind=Run.Kind.IMPORT, label=f"import {n}")
    html = client_in.get(f"/?run={old.pk}&tag=kitchen&tag=cluttered").content.decode()
    assert f'<option value="{old.pk}" selected>#{old.pk} crawl: kitchens</option>' in html
    assert '<input type="text" name="tag" value="cluttered"' in html
    assert '<input type="hidden" name="tag" value="kitchen">' in html
    assert 'type="hidden" name="tag" value="cluttered"' not in html  # not sent twice
    assert client_in.get("/?run=999999").status_code == 200  # an unknown run is not added


def test_count_is_exact_when_small(client_in, scene):
    assert client_in.get("/count/?final=reject").content.decode().strip() == "3 images"
    assert client_in.get("/count/?final=keep").content.decode().strip() == "1 image"
    assert gallery.estimate_count("final=keep") == (1, True)


def test_count_above_threshold_is_an_estimate(scene):
    count, exact = gallery.estimate_count("", exact_below=2)
    assert exact is False and count >= 1


# --- media and escaping ------------------------------------------------------------------------------

def test_media_served_to_signed_in_users(client_in, scene):
    a = scene["a"]
    response = client_in.get(f"/images/{a.pk}/full")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    assert "immutable" in response["Cache-Control"]
    assert client_in.get("/images/999999/thumb").status_code == 404


def test_hostile_query_is_escaped_in_gallery(client_in, scene):
    html = client_in.get("/", {"query": HOSTILE}).content.decode()
    assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
