"""The one way SceneImg fetches anything from the web.

Every connection is checked at connect time, on the address actually connected to, after DNS and
after every redirect, before a byte is sent (a resolve-then-request check is open to DNS rebinding).
Sizes are capped while streaming, and network errors are retried a bounded number of times.
"""
import logging
import random
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from crawl import politeness
from crawl.addresses import check_allow_private, refusal

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
RETRY_STATUSES = {429, 500, 502, 503, 504}
# Network hiccups worth another try; a connection cut mid-body shows up as ChunkedEncodingError.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
MAX_RETRY_AFTER = 60.0


class FetchError(Exception):
    """A fetch failed; the message says why, in words a person can act on."""


class Blocked(FetchError):
    """The URL or the address it resolves to is not allowed (SSRF guard)."""


class TooLarge(FetchError):
    pass


class TooSlow(FetchError):
    """Past its deadline, or slower than the minimum rate: not retried, the server would do it again."""


class HTTPStatusError(FetchError):
    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def check_address(host, ip, allow_private, port=None):
    reason = refusal(host, ip, allow_private, port)
    if reason:
        raise Blocked(f"refused to connect to {host} ({ip}): {reason} address")


def guarded_create_connection(host, port, timeout, allow_private, source_address=None, socket_options=None):
    """socket.create_connection, but every resolved address is checked before connecting to it."""
    err = None
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        check_address(host, sockaddr[0], allow_private, port=port)
    for family, socktype, proto, _canon, sockaddr in infos:
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            for opt in socket_options or ():
                sock.setsockopt(*opt)
            if timeout is not None and timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            err = exc
            if sock is not None:
                sock.close()
    raise err or OSError(f"could not connect to {host}")


_local = threading.local()


class _Deadline:
    """Shuts down the sockets of one attempt when its time is up.

    A server that sends a byte now and then never trips the read timeout, which bounds each read, not
    the transfer; only a socket shut down from outside makes the blocked read return. The connection
    registers its socket here (see _GuardMixin) while the attempt is the thread's current one.
    """

    def __init__(self, seconds):
        self.fired = False
        self._socks = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def add(self, sock):
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shutdown(sock)

    def _fire(self):
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def __enter__(self):
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _local.deadline = None


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watch(sock):
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.add(sock)


class _GuardMixin:
    allow_private = ()

    def connect(self):
        super().connect()
        _watch(self.sock)  # a request body sent to a server that reads slowly counts too

    def getresponse(self, *args, **kwargs):
        _watch(self.sock)  # a kept-alive connection was connected by an earlier fetch
        return super().getresponse(*args, **kwargs)

    def _new_conn(self):
        try:
            return guarded_create_connection(
                self._dns_host, self.port, self.timeout, self.allow_private,
                source_address=self.source_address, socket_options=self.socket_options,
            )
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
        except Blocked:
            raise
        except OSError as exc:
            raise NewConnectionError(self, f"failed to connect: {exc}") from exc


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allow_private, **kw):
        self.allow_private = tuple(allow_private)
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        allow = self.allow_private
        http_conn = type("GuardedHTTPConnection", (_GuardMixin, HTTPConnection), {"allow_private": allow})
        https_conn = type("GuardedHTTPSConnection", (_GuardMixin, HTTPSConnection), {"allow_private": allow})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def _retry_after(resp):
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        try:
            delta = parsedate_to_datetime(value).timestamp() - time.time()
            return min(max(delta, 0.0), MAX_RETRY_AFTER)
        except (TypeError, ValueError):
            return None


class Fetcher:
    def __init__(self, *, per_host=None, max_bytes=None, allow_private=None, headers=None, retries=None,
                 backoff=None, timeout=None, rng=None, check=None):
        # `check` is called between reads, redirects and retries; whatever it raises (a run's Cancelled)
        # ends the fetch, so a cancel does not wait for a slow transfer to finish.
        self.check = check
        self.per_host = per_host or settings.SCENEIMG_FETCH_PER_HOST
        self.max_bytes = max_bytes or settings.SCENEIMG_FETCH_MAX_BYTES
        self.retries = settings.SCENEIMG_FETCH_RETRIES if retries is None else retries
        self.backoff = settings.SCENEIMG_FETCH_BACKOFF if backoff is None else backoff
        self.timeout = timeout or (settings.SCENEIMG_FETCH_CONNECT_TIMEOUT, settings.SCENEIMG_FETCH_READ_TIMEOUT)
        allow = settings.SCENEIMG_FETCH_ALLOW_PRIVATE if allow_private is None else allow_private
        check_allow_private(allow)
        self.rng = rng or random.Random()
        self.session = requests.Session()
        self.session.trust_env = False  # a proxy from the environment would bypass the connect-time guard
        self.session.headers["User-Agent"] = settings.SCENEIMG_USER_AGENT
        self.session.headers.update(headers or {})
        adapter = _GuardedAdapter(allow, pool_connections=32, pool_maxsize=max(self.per_host, 10))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def get(self, url, *, headers=None, params=None, max_bytes=None, check=None):
        return self.request("GET", url, headers=headers, params=params, max_bytes=max_bytes, check=check)

    def post(self, url, *, data=None, files=None, headers=None, params=None, max_bytes=None, check=None):
        return self.request("POST", url, data=data, files=files, headers=headers, params=params,
                            max_bytes=max_bytes, check=check)

    def request(self, method, url, *, max_bytes=None, check=None, **kwargs):
        """Fetch with redirects followed by hand (each hop is checked) and bounded retries, all within
        SCENEIMG_FETCH_DEADLINE seconds."""
        budget = _Budget(settings.SCENEIMG_FETCH_DEADLINE, check or self.check or _no_check)
        for _hop in range(settings.SCENEIMG_FETCH_MAX_REDIRECTS + 1):
            resp = self._with_retries(method, url, max_bytes or self.max_bytes, kwargs, budget)
            if resp.is_redirect and "location" in resp.headers:
                url = urljoin(resp.url, resp.headers["location"])
                if resp.status_code in (301, 302, 303) and method == "POST":
                    method, kwargs = "GET", {k: v for k, v in kwargs.items() if k in ("headers",)}
                kwargs.pop("params", None)
                continue
            if resp.status_code >= 400:
                raise HTTPStatusError(f"HTTP {resp.status_code} from {_short(url)}", resp.status_code)
            return resp
        raise FetchError(f"too many redirects from {_short(url)}")

    def _with_retries(self, method, url, max_bytes, kwargs, budget):
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError as exc:
            raise FetchError(f"malformed URL {_short(url)}: {exc}") from None
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            raise Blocked(f"refused URL scheme {parts.scheme or '(none)'!r}: only http and https are fetched")
        if not host:
            raise FetchError(f"URL has no host: {_short(url)}")
        key, attempt, waited_out = politeness.host_key(host, parts.port), 0, None
        while True:
            budget.check()
            lease = politeness.acquire(key, self.per_host, wait_until=budget.ends, check=budget.check,
                                       waited_out=waited_out)
            if lease is None:
                raise TooSlow(f"gave up on {_short(url)}: no free connection to {host} (every slot busy, "
                              f"or the host paused) before the {budget.seconds:g} s deadline")
            try:
                resp = self._send(method, url, max_bytes, kwargs, budget)
            except TRANSIENT_ERRORS as exc:
                if isinstance(exc.__context__, Blocked) or attempt >= self.retries:
                    raise FetchError(f"could not fetch {_short(url)}: {_describe(exc)}") from exc
                delay = None
            except (requests.RequestException, ValueError, UnicodeError) as exc:
                # Not worth retrying: a malformed URL or redirect target, an undecodable body.
                raise FetchError(f"could not fetch {_short(url)}: {_describe(exc)}") from exc
            else:
                if resp.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return resp
                delay = _retry_after(resp)
            finally:
                lease.release()
            attempt += 1
            if delay is None:
                delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + self.rng.random())
            else:
                # The server asked every client to wait, so every worker holds off this host; this fetch
                # waits on its own clock below and does not wait for the same pause twice.
                waited_out = politeness.pause(key, delay)
            if delay >= budget.left(url):
                raise TooSlow(f"gave up on {_short(url)}: the next retry would pass the "
                              f"{budget.seconds:g} s deadline")
            log.info("retrying %s in %.1fs (attempt %d)", _short(url), delay, attempt)
            budget.sleep(delay)

    def _send(self, method, url, max_bytes, kwargs, budget):
        with _Deadline(budget.left(url)) as deadline:
            try:
                resp = self.session.request(method, url, stream=True, allow_redirects=False,
                                            timeout=self.timeout, **kwargs)
                try:
                    self._read_body(resp, url, max_bytes, budget)
                    if deadline.fired:
                        # A shut-down socket reads as the end of the headers or of a body of unknown
                        # length, so what arrived may look complete: it is not.
                        raise TooSlow(f"gave up on {_short(url)}: over the {budget.seconds:g} s deadline")
                finally:
                    if not resp._content_consumed or deadline.fired:
                        resp.raw.close()  # never hand a half-read or shut-down connection back to the pool
                    resp.close()
            except Exception as exc:
                if deadline.fired:
                    raise TooSlow(f"gave up on {_short(url)}: over the {budget.seconds:g} s deadline") from exc
                raise
        return resp

    def _read_body(self, resp, url, max_bytes, budget):
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"{_short(url)} is {int(declared)} bytes, over the {max_bytes}-byte limit")
        min_rate, window = settings.SCENEIMG_FETCH_MIN_RATE, settings.SCENEIMG_FETCH_RATE_WINDOW
        chunks, size, started = [], 0, time.monotonic()
        while True:
            # read1 returns whatever has arrived, so the checks below run while a slow body trickles in.
            chunk = _read1(resp.raw, 64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{_short(url)} is over the {max_bytes}-byte limit")
            chunks.append(chunk)
            budget.check()
            elapsed = time.monotonic() - started
            if min_rate and elapsed > window and size / elapsed < min_rate:
                raise TooSlow(f"gave up on {_short(url)}: too slow ({size / elapsed:.0f} bytes/s, "
                              f"under the {min_rate}-byte/s minimum)")
        resp._content = b"".join(chunks)
        resp._content_consumed = True


def _read1(raw, size):
    """urllib3's read1, with its errors turned into the ones requests' iter_content raises."""
    try:
        return raw.read1(size, decode_content=True)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


class _Budget:
    """One fetch's time: the deadline for all its redirects, retries and waits, and its cancel check."""

    def __init__(self, seconds, check):
        self.seconds = seconds
        self.check = check
        self.ends = time.monotonic() + seconds

    def left(self, url):
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TooSlow(f"gave up on {_short(url)}: over the {self.seconds:g} s deadline")
        return left

    def sleep(self, seconds):
        if self.check is _no_check:
            time.sleep(seconds)
            return
        # In short steps, so a cancel during a long Retry-After is seen within a second.
        while seconds > 0:
            time.sleep(min(1.0, seconds))
            seconds -= 1.0
            self.check()


def _no_check():
    return None


def _short(url, limit=120):
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _describe(exc):
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return text[:200]
