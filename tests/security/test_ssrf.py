"""The SSRF guard, address by address: every form that reaches a private, loopback, link-local or
otherwise non-public address is refused at connect time, public addresses pass."""
import pytest

from crawl.addresses import blocked_reason
from crawl.fetcher import Blocked, Fetcher, check_address
from tests.fakes.image_host import ImageHost


@pytest.mark.parametrize("address", [
    # IPv4
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
    "169.254.169.254", "224.0.0.1", "255.255.255.255", "192.0.0.1", "198.18.0.1", "240.0.0.1",
    # IPv6
    "::1", "::", "fe80::1", "fd00::1", "fc00::1", "ff02::1", "fec0::1", "2001:db8::1", "100::1",
    # IPv4 inside IPv6: mapped, compatible, translated
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::ffff:0:7f00:1",
    # 6to4 (2002::/16) carries an IPv4 address in bits 16-48
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:0a00:0001::1", "2002:c0a8:0101::1", "2002::1",
    # Teredo (2001::/32) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48)
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",
])
def test_non_public_addresses_are_blocked(address):
    assert blocked_reason(address) is not None, address
    with pytest.raises(Blocked):
        check_address("example.com", address, ())


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_public_addresses_pass(address):
    assert blocked_reason(address) is None


@pytest.mark.parametrize("address, embedded", [
    ("2002:7f00:1::1", "127.0.0.1"),
    ("2002:a9fe:a9fe::", "169.254.169.254"),
])
def test_6to4_reason_names_the_embedded_address(address, embedded):
    with pytest.raises(Blocked, match=embedded.replace(".", r"\.")):
        check_address("example.com", address, ())


def test_6to4_of_a_public_address_is_judged_by_that_address():
    assert blocked_reason("2002:0808:0808::1") is None  # 8.8.8.8


@pytest.fixture
def host():
    with ImageHost("127.0.0.1") as h:
        yield h


@pytest.mark.parametrize("netloc", [
    "2130706433",        # 127.0.0.1 as one decimal number
    "0x7f000001",        # ... as hex
    "0177.0.0.1",        # ... octal
    "127.1",             # short form
    "0",                 # 0.0.0.0
    "[::ffff:7f00:1]",
    "localhost",
    "LocalHost",
    "user:pw@127.0.0.1",
    "public.example@127.0.0.1",
])
def test_url_spellings_of_loopback_are_refused(host, netloc):
    port = host.server.server_address[1]
    url = f"http://{netloc}:{port}/img/1.jpg"
    with pytest.raises(Blocked):
        Fetcher(allow_private=[], retries=0).get(url)
    assert host.hits == {}


def test_teredo_is_refused_whatever_it_embeds():
    # 2001:0:4136:e378:8000:63bf:f7f7:f7f7 carries client 8.8.8.8 (bits inverted): still refused.
    assert blocked_reason("2001:0:4136:e378:8000:63bf:f7f7:f7f7") is not None


def test_an_exemption_with_a_port_opens_that_port_only():
    with ImageHost("127.0.0.1") as open_host, ImageHost("127.0.0.1") as other:
        fetcher = Fetcher(allow_private=[f"127.0.0.1:{open_host.server.server_address[1]}"], retries=0)
        assert fetcher.get(open_host.url("/img/1.jpg")).content
        with pytest.raises(Blocked):
            fetcher.get(other.url("/img/1.jpg"))
        assert other.hits == {}


@pytest.mark.parametrize("rule, host, ip, port, allowed", [
    ("127.0.0.1:8765", "127.0.0.1", "127.0.0.1", 8765, True),
    ("127.0.0.1:8765", "127.0.0.1", "127.0.0.1", 6379, False),
    ("localhost:8765", "localhost", "127.0.0.1", 8765, True),
    ("localhost:8765", "localhost", "127.0.0.1", 80, False),
    ("[::1]:8765", "::1", "::1", 8765, True),
    ("[::1]:8765", "::1", "::1", 8766, False),
    ("127.0.0.0/8:8765", "127.0.0.2", "127.0.0.2", 8765, True),
    ("127.0.0.0/8:8765", "127.0.0.2", "127.0.0.2", 22, False),
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", 6379, True),  # a bare host: every port (tests only)
    ("::1", "::1", "::1", 22, True),
])
def test_exemption_rules(rule, host, ip, port, allowed):
    if allowed:
        check_address(host, ip, [rule], port=port)
    else:
        with pytest.raises(Blocked):
            check_address(host, ip, [rule], port=port)


def test_the_demo_exempts_only_its_fakes_ports():
    """scripts/demo.sh lets its commands and the app's workers reach its fakes (the fake image host and
    Baidu stay up while the app runs), and nothing else on loopback: each exemption names one fake's port."""
    import re
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "scripts" / "demo.sh").read_text()
    values = re.findall(r"SCENEIMG_FETCH_ALLOW_PRIVATE=(\S+)", script)
    assert values
    for value in values:
        for rule in value.strip("\"'").split(","):
            assert re.fullmatch(r"127\.0\.0\.1:(\d+|\$\{?\w+\}?)", rule), rule
