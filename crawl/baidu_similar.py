"""Baidu reverse-image expansion (reference/baidu-protocol.md §2): the stage behind `search_by_images`.

For each seed: upload it (with the Acs-Token header), read the result page's cards (window.cardData,
or window.__PRELOADED_STATE__ as plain or base64 JSON), follow the simipic card's pcsimi URL page by
page, and ingest the candidates whose dHash distance to the seed falls inside the window, as the original
did: --dhash-min-distance or closer is a copy of the seed, farther than --dhash-threshold is something else.
"""
import hashlib
import logging
import mimetypes
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import close_old_connections

from crawl import ingest, politeness
from crawl.baidu import Pacer, append_run_error, mark_thumbnail_fallback, record_seen, seen_before
from crawl.baidu_protocol import (
    NotJson,
    loads_tolerant,
    parse_result_page,
    parse_similar_page,
    read_cards,
)
from crawl.fetcher import Fetcher, FetchError
from crawl.ingest import Filters, Sighting, compute_dhash, examine, ingest_bytes
from crawl.models import Source
from crawl.output import output_folder, write_output
from curation.models import Image, Run
from curation.runs import Cancelled
from curation.threads import db_pool

log = logging.getLogger(__name__)

SEED_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
PAGE_LIMIT = 30  # what the web page asks pcsimi for
PAGES_WITHOUT_PROGRESS = 20  # the original gave up on a seed after this many pages with nothing kept


class SeedError(Exception):
    """One seed could not be searched (unreadable, refused upload, unreadable result page)."""


class SimilarError(Exception):
    """The expansion as a whole cannot proceed (no seeds, every seed failed)."""


def graph_base():
    return settings.SCENEIMG_BAIDU_GRAPH_URL.rstrip("/")


def hamming(a, b):
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


# --- seeds -------------------------------------------------------------------------------------------
def seed_specs_from_dir(input_dir, pattern=None):
    """Seed files: those matching `pattern` (relative to the folder), else every image in the folder and
    its subfolders, as the original gathered them."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise SimilarError(f"seed folder {input_dir} does not exist")
    found = folder.glob(pattern) if pattern else folder.rglob("*")
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in SEED_SUFFIXES)
    return [{"path": str(p.resolve()), "name": p.name} for p in files]


def store_seed_upload(name, data):
    """Keep an uploaded seed in media storage so that a worker on any machine can read it."""
    sha = hashlib.sha256(data).hexdigest()
    ext = Path(name).suffix.lower() if Path(name).suffix.lower() in SEED_SUFFIXES else ".jpg"
    storage_name = f"seeds/{sha[:2]}/{sha}{ext}"
    if not default_storage.exists(storage_name):
        default_storage.save(storage_name, ContentFile(data))
    return {"storage": storage_name, "name": name}


def load_seed(spec):
    """(name, bytes, Image or None, dhash) for one seed spec: {"image_id"}, {"path"} or {"storage"}."""
    image = None
    try:
        if spec.get("image_id"):
            image = Image.objects.filter(pk=spec["image_id"]).first()
            if image is None:
                raise SeedError(f"seed image #{spec['image_id']} does not exist")
            with default_storage.open(image.file.name, "rb") as fh:
                data = fh.read()
            name = spec.get("name") or f"image-{image.pk}"
        elif spec.get("storage"):
            with default_storage.open(spec["storage"], "rb") as fh:
                data = fh.read()
            name = spec.get("name") or Path(spec["storage"]).name
        else:
            data = Path(spec["path"]).read_bytes()
            name = spec.get("name") or Path(spec["path"]).name
    except OSError as exc:
        raise SeedError(f"cannot read seed {spec}: {exc}") from None
    if image is not None:
        return name, data, image, image.dhash
    try:
        im = ingest.decode(data)
    except ingest.InvalidImage as exc:
        raise SeedError(f"seed {name} is not a usable image: {exc}") from None
    # Hashed upright, as every stored image and candidate is (a phone photo may be stored sideways).
    return name, data, None, compute_dhash(ingest.normalise(data, im).image)


# --- protocol ----------------------------------------------------------------------------------------
class GraphClient:
    def __init__(self, fetcher, *, base_url=None, pacer=None):
        self.fetcher = fetcher
        self.base = (base_url or graph_base()).rstrip("/")
        self.pacer = pacer or Pacer(key=politeness.url_key(self.base))

    def acs_token(self):
        """Baidu only checks that the header is there (PIS sends it empty, clones send one character);
        a real token from a browser session can be supplied through SCENEIMG_BAIDU_ACS_TOKEN."""
        configured = settings.SCENEIMG_BAIDU_ACS_TOKEN
        if configured:
            return configured
        now = int(time.time() * 1000)
        return f"{now}_{now + 37}_{secrets.token_urlsafe(24)}"

    def upload(self, name, data):
        """POST the seed; returns the result page URL."""
        self.pacer.wait()
        mime = mimetypes.guess_type(name)[0] or "image/jpeg"
        try:
            resp = self.fetcher.post(
                f"{self.base}/upload", params={"uptime": str(int(time.time() * 1000))},
                files={"image": (name, data, mime)},
                data={"tn": "pc", "from": "pc", "image_source": "PC_UPLOAD_FILE",
                      "range": '{"page_from": "searchIndex"}'},
                headers={"Acs-Token": self.acs_token(), "Referer": self.base + "/", "Origin": self.base,
                         "Accept": "application/json, text/plain, */*", "Accept-Language": "zh-CN,zh;q=0.9"},
            )
        except FetchError as exc:
            raise SeedError(f"upload of {name} failed: {exc}") from None
        try:
            payload = loads_tolerant(resp.content)
        except NotJson as exc:
            raise SeedError(f"upload of {name}: Baidu answered {exc}") from None
        status = payload.get("status") if isinstance(payload, dict) else None
        url = ((payload.get("data") or {}).get("url") if isinstance(payload, dict) else "") or ""
        if status != 0 or not url:
            msg = payload.get("msg", "") if isinstance(payload, dict) else ""
            raise SeedError(f"Baidu refused the upload of {name}: status {status} {msg}".strip())
        return url

    def cards(self, result_url):
        self.pacer.wait()
        try:
            resp = self.fetcher.get(result_url, headers={"Referer": self.base + "/", "Accept": "text/html,*/*"})
        except FetchError as exc:
            raise SeedError(f"result page failed: {exc}") from None
        try:
            return read_cards(parse_result_page(resp.content.decode("utf-8", errors="replace")))
        except NotJson as exc:
            raise SeedError(f"unreadable result page: {exc}") from None

    def similar_page(self, url):
        self.pacer.wait()
        try:
            resp = self.fetcher.get(url, headers={"Referer": self.base + "/", "Accept": "application/json",
                                                  "X-Requested-With": "XMLHttpRequest"})
            return parse_similar_page(loads_tolerant(resp.content))
        except (FetchError, NotJson) as exc:
            raise SeedError(f"pcsimi page failed: {exc}") from None


def page_url(first_url, page):
    """The pcsimi URL for page N: `page` counts from 1 and `next` is the page after it."""
    parts = urlsplit(first_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("page", "next")]
    query += [("next", str(page + 1)), ("page", str(page))]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the stage ---------------------------------------------------------------------------------------
class Window:
    """The dHash window around one seed; None bounds disable a side."""

    def __init__(self, seed_hash, min_distance, max_distance, enabled=True):
        self.seed_hash, self.min, self.max, self.enabled = seed_hash, min_distance, max_distance, enabled

    def reject_reason(self, candidate_hash):
        if not self.enabled:
            return None
        d = hamming(self.seed_hash, candidate_hash)
        if self.min is not None and d <= self.min:  # the original dropped a distance equal to the minimum too
            return f"copy of the seed: dHash distance {d} <= {self.min}"
        if self.max is not None and d > self.max:
            return f"not similar to the seed: dHash distance {d} > {self.max}"
        return None


def ingest_candidate(hit, sighting, window, *, fetcher, run, filters, tracker, dedup):
    """Fetch one candidate Hit (original, then thumbnail), check the window, then ingest it."""
    if dedup:
        image_id, seen_url = seen_before(hit.all_urls)
        if image_id is not None:
            return record_seen(sighting, hit, image_id, seen_url, run=run, tracker=tracker)
    sighting.url = hit.url
    errors = []
    for candidate in (hit.url, *hit.fallbacks):
        try:
            resp = fetcher.get(candidate)
        except FetchError as exc:
            errors.append(str(exc))
            continue
        extra = {"fetched_from": candidate}
        norm, _ = examine(resp.content, filters)
        if norm is not None:
            candidate_hash = compute_dhash(norm.image)
            extra["seed_distance"] = hamming(window.seed_hash, candidate_hash)
            reason = window.reject_reason(candidate_hash)
            if reason:
                return ingest.record(sighting, Source.Outcome.INVALID, run=run, reason=reason, tracker=tracker,
                                      extra=extra)
        return ingest_bytes(resp.content, sighting, run=run, filters=filters, tracker=tracker, extra=extra)
    return ingest.record(sighting, Source.Outcome.ERROR, run=run, reason="; ".join(errors) or "no URL",
                          tracker=tracker)


def _similar_cards(tracker, client, name, data):
    """Upload the seed; its result cards, or None (counted on the run) when Baidu has nothing but copies."""
    cards = client.cards(client.upload(name, data))
    if cards.noresult:
        tracker.count("_seeds_noresult")
        log.info("seed %s: Baidu found nothing (noresult)", name)
        return None
    if not cards.first_url:
        tracker.count("_seeds_same_only")
        log.info("seed %s: only copies of the seed (cards: %s)", name, ", ".join(cards.names))
        return None
    return cards


def _page_limit(first_url):
    return int(dict(parse_qsl(urlsplit(first_url).query)).get("limit") or PAGE_LIMIT)


def expand_seed(tracker, client, spec, *, limit_per_seed, pool, fetcher, filters, window_args, dedup,
                output=None, label="", debug=False):
    """Search one seed until limit_per_seed candidates are stored (kept inside the dHash window and new,
    what the original counted), the pages run dry, or 20 pages in a row bring nothing new (the
    original's stop). Returns how many candidates were processed."""
    run = tracker.run
    name, data, seed_image, seed_hash = load_seed(spec)
    window = Window(seed_hash, *window_args)
    cards = _similar_cards(tracker, client, name, data)
    if cards is None:
        return 0
    folder = output_folder(output, Path(name).stem, label) if output else None
    stored, processed, page, idle_pages = 0, 0, 1, 0
    while stored < limit_per_seed:
        tracker.check_cancelled()
        hits, raw = client.similar_page(page_url(cards.first_url, page))
        if debug:
            log.info("seed %s page %d: %d candidates", name, page, raw)

        def one(args, page=page, base=processed):
            i, hit = args
            try:
                tracker.check_cancelled(fresh=True)
                sighting = Sighting(
                    provider=Source.Provider.BAIDU_SIMILAR, page_url=hit.page_url, title=hit.title,
                    rank=base + i + 1, seed_image=seed_image, seed_name=name,
                    extra={**hit.extra, "label": label, "pcsimi_page": page},
                )
                source = ingest_candidate(hit, sighting, window, fetcher=fetcher, run=run, filters=filters,
                                          tracker=tracker, dedup=dedup)
                mark_thumbnail_fallback(source, hit)
                if folder is not None and source.outcome == Source.Outcome.STORED:
                    write_output(source, output, folder, {"seed": name, "label": label, "provider": "baidu_similar",
                                                          "seed_distance": source.extra.get("seed_distance")},
                                 keyword=False)
                return source.outcome
            except Cancelled:
                raise
            except Exception as exc:  # one bad candidate must not end the expansion or lose the others
                log.exception("candidate %s of seed %s failed", hit.url, name)
                return ingest.record(Sighting(provider=Source.Provider.BAIDU_SIMILAR, url=hit.url, seed_name=name,
                                              seed_image=seed_image), Source.Outcome.ERROR, run=run,
                                     reason=f"unexpected error: {exc}", tracker=tracker).outcome
            finally:
                close_old_connections()

        stored_before = stored
        waiting = list(enumerate(hits))
        while waiting and stored < limit_per_seed:  # never more downloads than images still wanted
            batch, waiting = waiting[:limit_per_seed - stored], waiting[limit_per_seed - stored:]
            stored += list(pool.map(one, batch)).count(Source.Outcome.STORED)
            processed += len(batch)
        page += 1
        if raw == 0 or raw < _page_limit(cards.first_url):
            break
        idle_pages = 0 if stored > stored_before else idle_pages + 1
        if idle_pages >= PAGES_WITHOUT_PROGRESS:
            log.info("seed %s: nothing new in %d pages in a row, stopping", name, idle_pages)
            break
    return processed


def expand_seeds(tracker, seeds, *, limit_per_seed=150, per_host=None, batch_size=16, max_concurrent=3,
                 dhash_threshold=18, dhash_min_distance=4, use_dhash=True, dedup=True, debug=False, output=None,
                 label="", filters=None, fetcher=None, batch=False):
    """Reverse-image search for every seed spec. A failing seed is recorded on the Run and skipped.

    With `batch`, `seeds` are one batch of a queued run's seeds (its total was set at launch), and the
    run fails only when its other batches' seeds failed too."""
    if not seeds:
        raise SimilarError("no seeds: give --input-dir (with a matching --glob) or --seed-image-id")
    run = tracker.run
    base = graph_base()
    headers = {"Referer": base + "/", "Accept-Language": "zh-CN,zh;q=0.9"}
    fetcher = fetcher or Fetcher(per_host=per_host, headers=headers, check=tracker.check_cancelled)
    client = GraphClient(fetcher, base_url=base)
    filters = filters or Filters.from_params(debug=debug)
    window_args = (dhash_min_distance, dhash_threshold, use_dhash)
    if not batch:
        tracker.add_total(len(seeds) * limit_per_seed)
    elif run is not None:  # the launch sets it too; a worker quicker than the launch must not add to nothing
        all_seeds = Run.objects.values_list("params", flat=True).get(pk=run.pk).get("seeds") or ()
        Run.objects.filter(pk=run.pk, total__isnull=True).update(total=len(all_seeds) * limit_per_seed)
    failures = []

    with db_pool(batch_size, "similar-dl") as pool:
        def seed_job(spec):
            try:
                tracker.check_cancelled()
                taken = expand_seed(tracker, client, spec, limit_per_seed=limit_per_seed, pool=pool,
                                    fetcher=fetcher, filters=filters, window_args=window_args, dedup=dedup,
                                    output=output, label=label, debug=debug)
                tracker.count("_seeds_done")
                if taken != limit_per_seed:  # candidates processed, not the limit
                    tracker.add_total(taken - limit_per_seed)
            except SeedError as exc:
                failures.append(str(exc))
                tracker.count("_seeds_failed")
                tracker.add_total(-limit_per_seed)
                append_run_error(run, str(exc))
            finally:
                close_old_connections()

        # Seeds run side by side (--max-concurrent); their downloads share the one pool (--batch-size).
        with db_pool(max_concurrent, "similar-seed") as seed_pool:
            for _ in seed_pool.map(seed_job, seeds):
                pass
    tracker.flush()
    if failures and len(failures) == len(seeds) and (not batch or _every_seed_failed(run)):
        raise SimilarError(f"every seed failed; the first: {failures[0]}")
    return tracker.counts


def _every_seed_failed(run):
    """Whether every seed of a run split into batches failed, this batch's counted already. Each batch
    counts its failures before it asks, so the last of them to ask sees them all."""
    if run is None:
        return True
    params, counters = Run.objects.values_list("params", "counters").get(pk=run.pk)
    return counters.get("_seeds_failed", 0) >= len(params.get("seeds") or ())

