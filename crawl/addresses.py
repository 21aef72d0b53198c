"""Which addresses the fetcher may connect to: public unicast only, unless a setting exempts one.

Checked at connect time for every address a host name resolves to (crawl/fetcher.py), so neither a
DNS answer nor a redirect can lead a fetch to the machine itself or its private network.
"""
import ipaddress


def _allow_rules(allow_private):
    """SCENEIMG_FETCH_ALLOW_PRIVATE entries as (host name or network, port or None) pairs.

    An entry is a host name, an address or a CIDR, optionally with a port: `127.0.0.1:8765`,
    `localhost:8765`, `[::1]:8765`, `127.0.0.0/8:8765`. Without a port every port of it is open.
    """
    rules = []
    for item in allow_private:
        item, port = item.strip(), None
        if item.startswith("["):
            addr, _, rest = item[1:].partition("]")
            item, port = addr, rest.lstrip(":") or None
        elif item.count(":") == 1:
            item, port = item.split(":")
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"SCENEIMG_FETCH_ALLOW_PRIVATE entry {item}:{port}: the port must be a number "
                                 f"from 1 to 65535 (an IPv6 address with a port is written [::1]:8765)")
            port = int(port)
        try:
            rules.append((ipaddress.ip_network(item, strict=False), port))
        except ValueError:
            rules.append((item.lower(), port))
    return rules


def check_allow_private(allow_private):
    """Raise ImproperlyConfigured naming the entry when an exemption cannot be read."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        _allow_rules(allow_private)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries and a router would deliver to, or None.

    ::ffff:a.b.c.d (mapped) and 2002:AABB:CCDD::/48 (6to4) are routed to the IPv4 address inside them;
    Teredo's client address is obfuscated inside 2001::/32. NAT64 (64:ff9b::/96) and IPv4-compatible
    (::a.b.c.d) fall in ranges that are refused whole, so they need no unpacking.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in SIX_TO_FOUR:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def blocked_reason(ip):
    """Why an address may not be fetched from, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return blocked_reason(ip.ipv4_mapped)
    inner = embedded_ipv4(ip)
    if inner is not None and blocked_reason(inner):
        return f"{blocked_reason(inner)} (embeds {inner})"
    # The prefix itself is judged too: Teredo's 2001::/32 is refused whatever it embeds.
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    for attr in ("is_loopback", "is_link_local", "is_multicast", "is_unspecified", "is_reserved", "is_private"):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    if not ip.is_global:
        return "not-global"
    return None


def refusal(host, ip, allow_private, port=None):
    """Why connecting to `ip` (resolved from `host`, on `port`) is refused, or None when it is allowed."""
    addr = ipaddress.ip_address(ip)
    name = host.lower().strip("[]")
    for target, rule_port in _allow_rules(allow_private):
        if rule_port is not None and rule_port != port:
            continue
        if target == name if isinstance(target, str) else addr in target:
            return None
    return blocked_reason(addr)
