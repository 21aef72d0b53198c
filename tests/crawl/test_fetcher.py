"""The fetcher: SSRF guard at connect time, redirects checked per hop, size caps, bounded retries."""
import socket
import threading
import time
from urllib.parse import quote

import pytest

from crawl.addresses import blocked_reason
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


@pytest.fixture
def slept(monkeypatch):
    """The seconds this test's thread asked to sleep (skipped). time.sleep is shared by every thread:
    others, such as the limiter's lease renewal, still sleep for real."""
    seconds, here, real_sleep = [], threading.current_thread(), time.sleep
    monkeypatch.setattr("crawl.fetcher.time.sleep",
                        lambda s: seconds.append(s) if threading.current_thread() is here else real_sleep(s))
    return seconds


def test_429_honours_retry_after(host, fetcher, slept):
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


def test_streamed_size_cap_is_exact(host, settings):
    # Chunked: no Content-Length to refuse on, so the cap is counted while streaming.
    settings.SCENEIMG_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    size = len(image_bytes(7))
    with pytest.raises(TooLarge, match=f"over the {size - 1}-byte limit"):
        Fetcher(max_bytes=size - 1).get(host.url("/chunked/7.jpg"))
    assert Fetcher(max_bytes=size).get(host.url("/chunked/7.jpg")).content == image_bytes(7)


@pytest.mark.parametrize(("address", "reason"), [
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:8.8.8.8", None),
])
def test_ipv4_mapped_addresses_are_judged_as_the_ipv4_address_they_carry(address, reason):
    assert blocked_reason(address) == reason


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


PUBLIC = "8.8.8.8"  # a public address; the tests below never let a connection reach it


@pytest.fixture
def dual_stack_name(monkeypatch):
    """`dual.test` resolves to a public and a loopback address, in the order a test sets; every
    connection attempt is recorded, and one to the public address is refused without touching the network."""
    real_getaddrinfo, real_socket = socket.getaddrinfo, socket.socket
    setup = {"order": [PUBLIC, "127.0.0.1"], "connects": []}

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "dual.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in setup["order"]]

    class RecordingSocket(real_socket):
        def connect(self, address):
            setup["connects"].append(address[0])
            if address[0] == PUBLIC:
                raise ConnectionRefusedError("public address refused by the test")
            return super().connect(address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "socket", RecordingSocket)
    return setup


@pytest.mark.parametrize("order", [[PUBLIC, "127.0.0.1"], ["127.0.0.1", PUBLIC]])
def test_every_resolved_address_is_checked_not_only_the_first(host, dual_stack_name, order):
    dual_stack_name["order"] = order
    port = host.server.server_address[1]
    with pytest.raises(Blocked, match=r"dual\.test \(127\.0\.0\.1\)"):
        Fetcher(allow_private=[], retries=0).get(f"http://dual.test:{port}/img/1.jpg")
    assert dual_stack_name["connects"] == []  # refused before connecting anywhere
    assert host.hits == {}


@pytest.fixture
def proxy_listener():
    """A loopback listener standing in for a proxy; it counts the connections it is offered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            seen.append(conn.recv(200))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    stop.set()
    thread.join()
    server.close()


def test_proxies_from_the_environment_are_ignored(monkeypatch, proxy_listener):
    proxy_url, seen = proxy_listener
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ImageHost("127.0.0.2") as target:
        assert Fetcher(allow_private=["127.0.0.2"], retries=0).get(target.url("/img/1.jpg")).content == image_bytes(1)
        assert target.hits == {"/img/1.jpg": 1}
    assert seen == []


def test_at_most_per_host_requests_at_once_across_fetchers(host):
    # One Fetcher per thread: the cap is per host for the whole process, not per Fetcher.
    errors = []

    def fetch(n):
        try:
            Fetcher(allow_private=["127.0.0.1"], per_host=2, retries=0).get(host.url(f"/slow/{n}.jpg?s=0.3"))
        except Exception as exc:  # reported below; a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(v for k, v in host.hits.items() if k.startswith("/slow/")) == 6
    assert host.peak == 2


@pytest.mark.parametrize("after", ["3600", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_capped_at_a_minute(host, fetcher, slept, after):
    assert fetcher.get(host.url(f"/retry-after/9.jpg?after={quote(after)}")).content == image_bytes(9)
    assert slept == [60.0]


@pytest.mark.parametrize("entry", ["127.0.0.1:http", "127.0.0.1:0", "[::1]:99999"])
def test_an_exemption_with_a_bad_port_is_refused_naming_it(entry):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"SCENEIMG_FETCH_ALLOW_PRIVATE entry .*port must be a number"):
        Fetcher(allow_private=[entry])
