"""Reading Baidu's answers: the quirks of reference/baidu-protocol.md, without network or database."""
import json

import pytest

from crawl import baidu_protocol as bp
from tests.fakes.baidu import FakeBaidu


@pytest.fixture(scope="module")
def fake():
    # Not started: only its body builders are used here.
    f = FakeBaidu()
    yield f
    f.server.server_close()


def test_objurl_cipher_round_trip_and_known_sample():
    url = "https://img.example.com/a/b_c-9.jpg?x=1&y=%2F"
    encoded = bp.encode_url(url)
    assert encoded.startswith("ipprf_z2C$q")
    assert bp.is_encrypted_url(encoded)
    assert bp.decode_url(encoded) == url
    assert bp.decode_url("ippr_z2C$qAzdH3FAzdH3F") == "http://"
    assert bp.decode_url("ippr") == "http"
    assert bp.decode_url("ipprf") == "https"


def test_plain_urls_are_not_scrambled():
    plain = "http://site.example/img/123.jpg"
    assert not bp.is_encrypted_url(plain)
    assert bp.decode_url(plain) == plain
    # Pushing it through the table anyway would corrupt it: that is why detection matters.
    assert plain.translate(bp._DECODE_TABLE) != plain


def test_gimg2_wrapper_unwrapped_to_the_original(fake):
    wrapped = fake.gimg2_url(42)
    assert bp.unwrap_gimg2(wrapped) == fake.original_url(42)
    # As Baidu serves it: encrypted, then decoded, then unwrapped.
    assert bp.unwrap_gimg2(bp.decode_url(bp.encode_url(wrapped))) == fake.original_url(42)
    assert bp.unwrap_gimg2("https://gimg2.baidu.com/image_search/src=http%3A%2F%2Fa.example%2Fx.jpg&refer=http%3A%2F%2Fa"
                           "&app=2002") == "http://a.example/x.jpg"
    assert bp.unwrap_gimg2("http://a.example/x.jpg") == "http://a.example/x.jpg"


def test_bad_escapes_and_control_characters_are_tolerated(fake):
    fake.bad_escapes = fake.control_chars = True
    text = fake.acjson_body("厨房", 0, 5)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # the quirk is real: a strict parser fails
    payload = bp.loads_tolerant(text)
    page = bp.parse_keyword_page(payload)
    assert len(page.hits) == 5
    assert "its" in page.hits[0].title.replace("'", "")


def test_trailing_empty_item_strong_titles_and_string_dims(fake):
    fake.string_dims = True
    payload = bp.loads_tolerant(fake.acjson_body("书桌", 0, 6))
    assert payload["data"][-1] == {}
    page = bp.parse_keyword_page(payload)
    assert page.raw_count == 6 and len(page.hits) == 6
    assert all("<" not in hit.title for hit in page.hits)
    assert [(h.width, h.height) for h in page.hits[:3]] == [(640, 480), (0, 0), (0, 480)]
    assert bp.clean_title("员工<strong>折线图</strong") == "员工折线图"
    assert bp.clean_title("a &amp; <strong>b</strong>") == "a & b"


@pytest.mark.parametrize("mode", ["encrypted", "plain", "gimg2", "mixed"])
def test_every_objurl_form_gives_the_original(fake, mode):
    fake.objurl_mode = mode
    ids = fake.results_for("客厅")[:6]
    page = bp.parse_keyword_page(bp.loads_tolerant(fake.acjson_body("客厅", 0, 6)))
    assert [h.url for h in page.hits] == [fake.original_url(i) for i in ids]
    assert page.hits[0].fallbacks == [fake.replace_url(ids[0]), fake.thumb_url(ids[0])]
    assert page.hits[0].page_url.startswith("http://site")


def test_list_num_and_end_of_results(fake):
    fake.queries = {"q": list(range(10, 45))}
    payload = bp.loads_tolerant(fake.acjson_body("q", 30, 30))
    page = bp.parse_keyword_page(payload)
    assert page.list_num == 35 and page.raw_count == 5
    assert bp.parse_keyword_page(bp.loads_tolerant(fake.acjson_body("q", 35, 30))).raw_count == 0


def test_antiflag_and_captcha_detection():
    anti = {"antiFlag": 1, "message": "Forbid spider access", "bfe_log_id": "1"}
    assert bp.is_antiflag(anti)
    assert not bp.is_antiflag({"antiFlag": 0, "data": []})
    with pytest.raises(bp.NotJson):
        bp.parse_keyword_page(anti)
    assert bp.looks_like_captcha("https://wappass.baidu.com/static/captcha/tuxing.html?ak=1")
    assert bp.looks_like_captcha("", "<title>百度安全验证</title>")
    assert not bp.looks_like_captcha("https://image.baidu.com/search/acjson", "{}")
    with pytest.raises(bp.NotJson):
        bp.loads_tolerant("<html>百度安全验证</html>")


@pytest.mark.parametrize("state_mode", ["carddata", "preloaded", "preloaded_b64"])
def test_result_page_states(fake, state_mode):
    fake.state_mode = state_mode
    fake.result_mode = "simipic"
    html = fake.result_page("abc123", "s" * 32)
    cards = bp.read_cards(bp.parse_result_page(html))
    assert cards.names == ["same", "simipic"]
    assert cards.first_url.startswith(fake.url + "/ajax/pcsimi?")
    assert "&session_id=abc123&" in cards.first_url  # \u0026 and \/ were undone
    assert len(cards.same) == 1


def test_noresult_and_same_only_pages(fake):
    fake.result_mode = "noresult"
    cards = bp.read_cards(bp.parse_result_page(fake.result_page("abc", "s")))
    assert cards.noresult and not cards.first_url
    fake.result_mode = "same_only"
    cards = bp.read_cards(bp.parse_result_page(fake.result_page("abc", "s")))
    assert not cards.noresult and not cards.first_url and len(cards.same) == 1
    with pytest.raises(bp.NotJson):
        bp.parse_result_page("<html><body>页面已失效</body></html>")


def test_pcsimi_items_use_the_thumbnail_when_objurl_is_a_page(fake):
    fake.sessions["abc"] = b""
    hits, raw = bp.parse_similar_page(fake.pcsimi_body("abc", 1, 30))
    assert raw == 30 and len(hits) == 30
    assert hits[0].url == fake.similar_thumb("abc", 0)
    assert hits[0].page_url == "http://site0.example/similar/0"
    hits, raw = bp.parse_similar_page(fake.pcsimi_body("abc", 2, 30))
    assert raw == fake.similar_total - 30
    with pytest.raises(bp.NotJson):
        bp.parse_similar_page({"status": 1, "msg": "session expired"})


# objURL / fromURL values Baidu really served, with their plain URLs from a source independent of
# our table. Found by searching public code for strings that start with "ippr_z2C$q".
REAL_SAMPLES = [
    # The fromURL of an acjson item (a 2018 mt.sohu.com article) quoted whole in a public write-up
    # on crawling Baidu images; the plain URL is the same item's replaceUrl[0].FromURL.
    ("ippr_z2C$qAzdH3FAzdH3F4p_z&e3Bf5i7_z&e3Bv54AzdH3Fk7ftgjffAzdH3F1da8ba8d0AzdH3Fd8lnm8aa9_0cndnd_z&e3Bfip4s",
     "http://mt.sohu.com/business/d20180127/219361004_753232.shtml"),
    # The before/after example in the docstring of a public Baidu image downloader's _decode().
    ("ippr_z2C$qAzdH3FAzdH3Ffl_z&e3Bftgwt42_z&e3BvgAzdH3F4omlaAzdH3Faa8W3ZyEpymRmx3Y1p7bb&mla",
     "http://s9.sinaimg.cn/mw690/001WjZyEty6R6xjYdtu88&690"),
    # A public project's test of its own decoder.
    ("ippr_z2C$qAzdH3FAzdH3Fkwt17_z&e3Bv54", "http://baidu.com"),
]
# fromURLs of captured acjson items (quoted in public crawlers' notes) whose full plain URL nobody
# published, but whose host Baidu sent in the same item's fromURLHost.
REAL_HOSTS = [
    ("ippr_z2C$qAzdH3FAzdH3Fu5674_z&e3Bxtpjh_z&e3Bv54AzdH3Fu5674-etjopi6jw1-wvpt5g-r6tgpwksj-pt1-ldamnl_z&e3Bip4s",
     "forum.xitek.com"),
    ("ippr_z2C$qAzdH3FAzdH3Fooo_z&e3Bp6trw1etf56_z&e3Bv54AzdH3FL5vwpt5gPi5p5Dt6jvpLtgh-2dlc9d9-18nbldcl-tn9m80nbb"
     "-R7pi_f_Ci6tf_Spjwh_H57fj_D7kwt-D7kwt_E4t6wpj_5u_D7kwt_z&e3Bip4sn9m80nbb",
     "www.tripadvisor.com"),
]
# The character table as other open-source Baidu crawlers publish it, encrypted -> plain (for one,
# YouRockMyWorld/Python_Projects, baidu_image_spider/utils.py; icrawler's early BaiduParser has the same).
PUBLISHED_TABLE = dict(zip("wkv1ju2it3hs4g5rq6fp7eo8dn9cm0bla", "abcdefghijklmnopqrstuvw1234567890", strict=True))


@pytest.mark.parametrize(("encoded", "plain"), REAL_SAMPLES)
def test_real_objurl_samples_decode_to_their_published_urls(encoded, plain):
    assert bp.is_encrypted_url(encoded)
    assert bp.decode_url(encoded) == plain


@pytest.mark.parametrize(("encoded", "host"), REAL_HOSTS)
def test_real_fromurl_samples_decode_to_the_host_baidu_named(encoded, host):
    from urllib.parse import urlsplit

    assert urlsplit(bp.decode_url(encoded)).hostname == host


def test_every_character_of_the_table_matches_the_published_one():
    # Between them the real samples use every table character but "q" (which maps to itself).
    used = "".join(enc for enc, _ in REAL_SAMPLES + REAL_HOSTS)
    for token in ("_z2C$q", "_z&e3B", "AzdH3F"):
        used = used.replace(token, "")
    used = set(used)
    assert set(PUBLISHED_TABLE) - used == {"q"}
    encrypted = "".join(PUBLISHED_TABLE)
    assert bp.decode_url("ippr" + encrypted) == "http" + "".join(PUBLISHED_TABLE.values())
