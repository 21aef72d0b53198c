"""The fetcher: SSRF guard at connect time, redirects checked per hop, size caps, bounded retries."""
import pytest

from crawl.fetcher import Blocked, Fetcher, FetchError, HTTPStatusError, TooLarge
from tests.fakes.image_host import ImageHost, image_bytes


@pytest.fixture
def host():
    with ImageHost("127.0.0.1") as h:
        yield h


@pytest.fixture
def fetcher(settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    return Fetcher(retries=2, backoff=0.01)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://127.0.0.1/x",
    "gopher://127.0.0.1/x",
])
def test_only_http_and_https(url):
    with pytest.raises(Blocked, match="scheme"):
        Fetcher(allow_private=[]).get(url)


@pytest.mark.parametrize("target", [
    "127.0.0.1", "localhost", "0.0.0.0", "10.0.0.1", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]",
    "192.168.1.1", "172.16.0.1", "224.0.0.1", "100.64.0.1",
])
def test_private_addresses_are_refused_before_any_request(host, target):
    port = host.server.server_address[1]
    with pytest.raises(Blocked, match="refused to connect"):
        Fetcher(allow_private=[], retries=0).get(f"http://{target}:{port}/img/1.jpg")
    assert host.hits == {}


def test_redirect_from_allowed_host_to_private_is_refused_before_the_private_request():
    with ImageHost("127.0.0.2") as allowed, ImageHost("127.0.0.3") as private:
        fetcher = Fetcher(allow_private=["127.0.0.2"], retries=0)
        assert fetcher.get(allowed.url("/img/1.jpg")).content == image_bytes(1)
        with pytest.raises(Blocked, match="127.0.0.3"):
            fetcher.get(allowed.url("/redirect?to=" + private.url("/img/1.jpg")))
        assert allowed.hits.get("/redirect") == 1
        assert private.hits == {}


def test_allow_list_takes_cidrs(host):
    port = host.server.server_address[1]
    assert Fetcher(allow_private=["127.0.0.0/8"]).get(f"http://127.0.0.1:{port}/img/2.jpg").content


def test_redirects_are_followed(host, fetcher):
    resp = fetcher.get(host.url("/redirect?to=/img/3.jpg"))
    assert resp.content == image_bytes(3) and resp.url.endswith("/img/3.jpg")


def test_retries_5xx_then_succeeds(host, fetcher):
    assert fetcher.get(host.url("/flaky/4.jpg?fail=2")).content == image_bytes(4)
    assert host.hits["/flaky/4.jpg"] == 3


def test_retries_are_bounded(host, fetcher):
    with pytest.raises(HTTPStatusError, match="503"):
        fetcher.get(host.url("/flaky/5.jpg?fail=10"))
    assert host.hits["/flaky/5.jpg"] == 3  # one try and two retries


def test_429_honours_retry_after(host, fetcher, monkeypatch):
    slept = []
    monkeypatch.setattr("crawl.fetcher.time.sleep", slept.append)
    assert fetcher.get(host.url("/retry-after/6.jpg")).content == image_bytes(6)
    assert slept == [1.0]


def test_404_is_not_retried(host, fetcher):
    with pytest.raises(HTTPStatusError, match="404"):
        fetcher.get(host.url("/nothing"))
    assert host.hits["/nothing"] == 1


def test_size_cap_without_content_length(host, settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with pytest.raises(TooLarge):
        Fetcher(max_bytes=1_000_000).get(host.url("/endless"))
    assert Fetcher(max_bytes=1_000_000).get(host.url("/chunked/7.jpg")).content == image_bytes(7)


def test_size_cap_with_content_length(host, settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with pytest.raises(TooLarge, match="limit"):
        Fetcher(max_bytes=1000).get(host.url("/img/8.jpg"))


def test_connection_refused_is_a_clear_error(settings):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with pytest.raises(FetchError, match="could not fetch"):
        Fetcher(retries=1, backoff=0.01).get("http://127.0.0.1:9/x.jpg")


@pytest.mark.parametrize("url", [
    "http://[::1",                     # unbalanced bracket
    "http://127.0.0.1:99999/x.jpg",    # port out of range
    "http://exa mple.com/x.jpg",       # space in the host
    "http://" + "a" * 70 + ".com/x",   # label too long for IDNA
])
def test_malformed_urls_are_fetch_errors(settings, url):
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    with pytest.raises(FetchError):
        Fetcher(retries=0).get(url)


def test_a_body_cut_short_is_retried_then_a_fetch_error(host, fetcher):
    with pytest.raises(FetchError, match="could not fetch"):
        fetcher.get(host.url("/cut"))
    assert host.hits["/cut"] == 3
