"""Baidu Images keyword crawl (reference/baidu-protocol.md §1): the stage behind `crawl_baidu`.

Warm-up for cookies, browser-like headers, acjson paging until listNum / a short page / the reachable
cap, tolerant parsing, then every result goes through the one ingest path with its fallbacks
(replaceUrl copies, then Baidu's thumbnail). When Baidu refuses (antiFlag, captcha) the client backs
off a bounded number of times, then gives up on that query with a clear error on the Run.
"""
import logging
import threading
import time
from urllib.parse import urlencode

from django.conf import settings
from django.db import close_old_connections, transaction

from crawl import politeness
from crawl.baidu_protocol import NotJson, is_antiflag, loads_tolerant, looks_like_captcha, parse_keyword_page
from crawl.fetcher import Fetcher, FetchError, HTTPStatusError
from crawl.ingest import Filters, Sighting, ingest_url, record, url_hash
from crawl.models import Source
from crawl.output import output_folder, write_output
from curation.models import Image, Run
from curation.runs import Cancelled
from curation.threads import db_pool

log = logging.getLogger(__name__)

PAGE_SIZE = 30  # what the web page asks for; the fake (and probably Baidu) caps rn at 60
REACHABLE_CAP = 2000  # Baidu serves about 2,000 results per query; deeper pages repeat earlier ones
REFUSED_QUERIES_BEFORE_STOP = 2  # consecutive refused queries: Baidu is blocking us, stop the run
ACCEPT_LANGUAGE = "zh-CN,zh;q=0.9,en;q=0.8"


class BaiduRefused(Exception):
    """Baidu kept answering antiFlag or a captcha after the bounded retries."""


class BaiduError(Exception):
    """Baidu answered something we cannot read (not JSON, an unexpected shape)."""


def image_base():
    return settings.SCENEIMG_BAIDU_IMAGE_URL.rstrip("/")


def refusal_retries():
    return settings.SCENEIMG_BAIDU_REFUSAL_RETRIES


def refusal_backoff():
    """Seconds before the first retry after a refusal; doubles each time."""
    return settings.SCENEIMG_BAIDU_REFUSAL_BACKOFF


def browser_headers(referer):
    return {"Accept-Language": ACCEPT_LANGUAGE, "Referer": referer}


class Pacer:
    """Keeps successive requests to Baidu at least `interval` seconds apart: across every worker when
    given the host's `key` and Redis answers, else across this Pacer's threads."""

    def __init__(self, interval=None, sleep=time.sleep, key=None):
        self.interval = float(settings.SCENEIMG_BAIDU_PACING if interval is None else interval)
        self.sleep = sleep
        self.key = key
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self):
        if self.interval <= 0:
            return
        shared = politeness.turn(self.key, self.interval) if self.key else None
        if shared is not None:
            if shared > 0:
                self.sleep(shared)
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self.sleep(delay)


def append_run_error(run, message):
    """Record a problem on the Run without failing it (the run goes on with the next query or seed)."""
    log.warning("%s", message)
    if run is None:
        return
    with transaction.atomic():
        current = Run.objects.select_for_update().values_list("error", flat=True).get(pk=run.pk)
        if message not in current:
            Run.objects.filter(pk=run.pk).update(error=f"{current}\n{message}".strip()[:5000])


class KeywordClient:
    """acjson with a warmed-up cookie jar, browser headers and bounded back-off on refusals."""

    def __init__(self, fetcher, *, base_url=None, pacer=None, retries=None, backoff=None, sleep=time.sleep):
        self.fetcher = fetcher
        self.base = (base_url or image_base()).rstrip("/")
        self.pacer = pacer or Pacer(sleep=sleep, key=politeness.url_key(self.base))
        self.retries = refusal_retries() if retries is None else retries
        self.backoff = refusal_backoff() if backoff is None else backoff
        self.warmed = False
        self.requests = 0

    def _get(self, url, **kw):
        self.pacer.wait()
        self.requests += 1
        return self.fetcher.get(url, **kw)

    def warm_up(self, query=""):
        """Visit the home page and the search page like a browser: Baidu sets BAIDUID there (SearXNG does the same)."""
        headers = browser_headers(self.base + "/")
        self._get(self.base + "/", headers={**headers, "Accept": "text/html,application/xhtml+xml,*/*"})
        if query:
            self._get(f"{self.base}/search/index", params={"tn": "baiduimage", "word": query},
                      headers={**headers, "Accept": "text/html,application/xhtml+xml,*/*"})
        self.warmed = True

    def acjson_params(self, query, pn, rn):
        return {
            "tn": "resultjson_com", "logid": str(int(time.time() * 1e6))[-19:], "ipn": "rj", "ct": "201326592",
            "is": "", "fp": "result", "fr": "", "word": query, "queryWord": query, "cl": "2", "lm": "-1",
            "ie": "utf-8", "oe": "utf-8", "adpicid": "", "st": "-1", "z": "", "ic": "", "hd": "", "latest": "",
            "copyright": "", "s": "", "se": "", "tab": "", "width": "", "height": "", "face": "0", "istype": "2",
            "qc": "", "nc": "1", "expermode": "", "nojc": "", "isAsync": "", "pn": str(pn), "rn": str(rn),
            "gsm": format(pn, "x"), str(int(time.time() * 1000)): "",
        }

    def page(self, query, pn, rn=PAGE_SIZE):
        """The parsed acjson answer for one page. Raises BaiduRefused or BaiduError."""
        referer = f"{self.base}/search/index?" + urlencode({"tn": "baiduimage", "word": query})
        headers = {**browser_headers(referer), "Accept": "text/plain, */*; q=0.01",
                   "X-Requested-With": "XMLHttpRequest"}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                log.info("Baidu refused %r at offset %d (%s); retrying in %.1fs", query, pn, last, delay)
                # Every worker holds off Baidu, not only this one; the next request waits for the pause
                # in the fetcher, where a cancel is seen.
                politeness.pause(politeness.url_key(self.base), delay)
                self.fetcher.session.cookies.clear()  # a fresh identity, as a browser restart would be
                self.warmed = False
            try:
                if not self.warmed:
                    self.warm_up(query)
                resp = self._get(f"{self.base}/search/acjson", params=self.acjson_params(query, pn, rn),
                                 headers=headers)
            except HTTPStatusError as exc:
                if exc.status in (403, 429):
                    last = f"HTTP {exc.status}"
                    continue
                raise BaiduError(f"Baidu acjson failed: {exc}") from exc
            except FetchError as exc:
                raise BaiduError(f"Baidu acjson failed: {exc}") from exc
            text = resp.content.decode("utf-8", errors="replace")
            if looks_like_captcha(resp.url, text):
                last = "captcha"
                continue
            try:
                payload = loads_tolerant(text)
            except NotJson as exc:
                last = f"not JSON: {exc}"  # a body that is not JSON is a block page, so it is retried like a refusal
                continue
            if is_antiflag(payload):
                last = f"antiFlag: {payload.get('message', '')}".strip()
                continue
            if not isinstance(payload, dict):
                raise BaiduError(f"Baidu acjson answered {type(payload).__name__}, not an object")
            return payload
        raise BaiduRefused(
            f"Baidu refused the request: anti-spider ({last}) for query {query!r} at offset {pn}, "
            f"after {self.retries + 1} tries"
        )


def seen_before(urls):
    """(image id, url) for the first of `urls` a stored or duplicate Source already has, else (None, "").

    A result is known by any of its addresses: a folder written by the original scripts names the
    picture by the one they downloaded (often Baidu's hoverURL), not by the original SceneImg fetches.
    """
    hashes = {url_hash(u): u for u in urls if u}
    if not hashes:
        return None, ""
    rows = dict(Source.objects.filter(url_hash__in=hashes, image__isnull=False,
                                      outcome__in=[Source.Outcome.STORED, Source.Outcome.DUPLICATE])
                .values_list("url_hash", "image_id"))
    for h, url in hashes.items():
        if h in rows:
            return rows[h], url
    return None, ""


def record_seen(sighting, hit, image_id, seen_url, *, run, tracker):
    sighting.url = hit.url
    note = "" if seen_url == hit.url else f" as {seen_url}"
    return record(sighting, Source.Outcome.DUPLICATE, run=run, image=Image(pk=image_id),
                  reason=f"URL already seen (#{image_id}){note}", tracker=tracker)


def mark_thumbnail_fallback(source, hit):
    """Record on the Source that the original failed and Baidu's thumbnail is what we stored."""
    if source.extra.get("fetched_from") and source.extra.get("fetched_from") == hit.thumb_url != hit.url:
        source.extra["fetched_via"] = "thumbnail"
        source.reason = source.reason or "original could not be fetched; Baidu's thumbnail was stored"
        Source.objects.filter(pk=source.pk).update(extra=source.extra, reason=source.reason)


def crawl_keywords(tracker, queries, *, limit_per_query=200, per_host=None, batch_size=20, debug=False,
                   output=None, label="", filters=None, fetcher=None, skip_known=True, page_size=PAGE_SIZE,
                   client=None, start=0, max_pages=None):
    """Crawl each query and ingest every result. Refused queries are recorded on the Run and skipped.
    `start` and `max_pages` let a collect-until-kept round take up one query where the last round left it."""
    queries = [q.strip() for q in queries if q and q.strip()]
    if not queries:
        raise BaiduError("no queries: give --query, --query-file or --default-queries")
    run = tracker.run
    base = image_base()
    fetcher = fetcher or Fetcher(per_host=per_host, headers=browser_headers(base + "/"),
                                 check=tracker.check_cancelled)
    client = client or KeywordClient(fetcher, base_url=base)
    filters = filters or Filters.from_params(debug=debug)
    tracker.add_total(len(queries) * limit_per_query)
    refused, in_a_row, last_refusal = [], 0, ""

    with db_pool(batch_size, "baidu-dl") as pool:
        for index, query in enumerate(queries):
            tracker.check_cancelled()
            done_before = _results_counted(tracker)
            try:
                taken = crawl_query(tracker, client, query, pool, limit=limit_per_query, fetcher=fetcher,
                                    filters=filters, output=output, label=label, skip_known=skip_known,
                                    page_size=page_size, debug=debug, start=start, max_pages=max_pages)
                in_a_row = 0
            except BaiduRefused as exc:
                refused.append(query)
                last_refusal = str(exc)
                in_a_row += 1
                tracker.count("_refused_queries")
                tracker.add_total(_results_counted(tracker) - done_before - limit_per_query)
                append_run_error(run, str(exc))
                if in_a_row >= REFUSED_QUERIES_BEFORE_STOP and index + 1 < len(queries):
                    rest = len(queries) - index - 1
                    tracker.add_total(-rest * limit_per_query)
                    append_run_error(run, f"stopped: Baidu refused {in_a_row} queries in a row; "
                                          f"{rest} queries not crawled")
                    break
                continue
            if taken != limit_per_query:  # results processed, not the limit: set the expected total right
                tracker.add_total(taken - limit_per_query)
    tracker.flush()
    if refused and not any(tracker.counts.get(k) for k in ("stored", "duplicate", "invalid", "error")):
        raise BaiduRefused(f"{last_refusal}; nothing was crawled ({len(refused)} of {len(queries)} queries refused)")
    return tracker.counts


def _results_counted(tracker):
    return sum(tracker.counts.get(k, 0) for k in ("stored", "duplicate", "invalid", "error"))


def crawl_query(tracker, client, query, pool, *, limit, fetcher, filters, output=None, label="",
                skip_known=True, page_size=PAGE_SIZE, debug=False, start=0, max_pages=None):
    """Page through one query from offset `start` until `limit` new images are stored (what the original
    counted: results already seen, duplicates and rejects do not count), Baidu runs dry, the reachable
    cap, or `max_pages` pages. The offset reached and a dry query are counted (`_offset`, `_query_ended`)
    so the next collect-until-kept round knows where to go on. Returns how many results were processed;
    never more downloads run than images are still needed, so the limit is met exactly."""
    run = tracker.run
    folder = output_folder(output, query, label) if output else None
    stored, processed, pn, pages = 0, 0, start, 0
    while stored < limit and pn < REACHABLE_CAP and (max_pages is None or pages < max_pages):
        tracker.check_cancelled()
        payload = client.page(query, pn, page_size)
        try:
            page = parse_keyword_page(payload)
        except NotJson as exc:
            raise BaiduError(f"Baidu acjson for {query!r} at offset {pn}: {exc}") from None
        if debug:
            log.info("%r pn=%d: %d results (listNum %s)", query, pn, page.raw_count, page.list_num)

        def one(args, base_rank=pn):
            i, hit = args
            try:
                tracker.check_cancelled(fresh=True)
                sighting = Sighting(
                    provider=Source.Provider.BAIDU, query=query, page_url=hit.page_url, title=hit.title,
                    rank=base_rank + i + 1, extra={**hit.extra, "label": label, "listed_size": [hit.width, hit.height]},
                )
                image_id, seen_url = seen_before(hit.all_urls) if skip_known else (None, "")
                if image_id is not None:
                    return record_seen(sighting, hit, image_id, seen_url, run=run, tracker=tracker).outcome
                source = ingest_url(hit.url, sighting, fetcher=fetcher, run=run, filters=filters, tracker=tracker,
                                    skip_known=skip_known, fallback_urls=hit.fallbacks)
                mark_thumbnail_fallback(source, hit)
                if folder is not None and source.outcome == Source.Outcome.STORED:
                    write_output(source, output, folder, {"query": query, "label": label, "provider": "baidu"},
                                 keyword=True)
                return source.outcome
            except Cancelled:
                raise
            except Exception as exc:  # one bad result must not end the crawl or lose the others
                log.exception("result %s of %r failed", hit.url, query)
                return record(Sighting(provider=Source.Provider.BAIDU, url=hit.url, query=query),
                              Source.Outcome.ERROR, run=run, reason=f"unexpected error: {exc}", tracker=tracker).outcome
            finally:
                close_old_connections()

        waiting = list(enumerate(page.hits))
        while waiting and stored < limit:
            batch, waiting = waiting[:limit - stored], waiting[limit - stored:]
            outcomes = list(pool.map(one, batch))
            stored += outcomes.count(Source.Outcome.STORED)
            processed += len(batch)
        pn += page.raw_count
        pages += 1
        tracker.count("_offset", page.raw_count)
        if _ran_dry(page, pn, page_size):
            tracker.count("_query_ended")
            break
    return processed


def _ran_dry(page, pn, page_size):
    """An empty or short page is the end, and so is the result count Baidu announced or can reach."""
    return (page.raw_count == 0 or page.raw_count < page_size or pn >= REACHABLE_CAP
            or (page.list_num is not None and pn >= page.list_num))
