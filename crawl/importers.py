"""Import stages: a folder of images (including folders the original scripts wrote) and URL lists."""
import json
import logging
from functools import partial
from pathlib import Path

from crawl import batches, queries
from crawl import original as original_layout
from crawl.fetcher import Fetcher, FetchError
from crawl.ingest import Filters, Sighting, examine, known_url, prepare, url_hash
from crawl.models import Source
from crawl.rows import Item
from curation.models import Image, Run
from curation.runs import Cancelled
from curation.threads import db_pool

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
# Where a sidecar or index names the image's web address: the original's `source` and `url` first,
# `final_url` (after redirects) only when nothing else is there.
URL_KEYS = ("source", "url", "source_url", "obj_url", "objURL", "image_url", "img_url", "src", "final_url")
PAGE_KEYS = ("page_url", "fromURL", "from_url", "referer", "page")
TITLE_KEYS = ("title", "fromPageTitle", "fromPageTitleEnc")
QUERY_KEYS = ("query", "keyword", "word")
SEED_KEYS = ("seed", "seed_name", "seed_path")
PROVIDERS = {choice.value for choice in Source.Provider}


class ImportSourceError(Exception):
    """The import as a whole cannot proceed (missing folder, unreadable list)."""


def _first(meta, keys, accept=lambda value: True):
    for key in keys:
        value = meta.get(key)
        if isinstance(value, str) and value and accept(value):
            return value
    return ""


def _filtered_source_metadata(entry, index_folder, indexes):
    """A filter_basic.py copy knows its crawled original only by path: that file's sidecar and index
    entry hold the URL. {} when the original file is not on this machine."""
    original = original_layout.find_file(entry.get("source") or "", index_folder) if entry.get("source") else None
    if original is None:
        return {}
    indexes.add_tree(original.parent, recursive=False)
    crawled, crawl_root, _ = indexes.lookup(original)
    meta = {**(crawled or {}), **original_layout.read_sidecar(original)}
    meta["_folder"] = original_layout.folder_name(original, crawl_root or original.parent.parent)
    meta["filtered_from"] = str(original)
    return meta


def file_metadata(path, folder, indexes):
    """Everything the original scripts wrote about one file: its index entry, then its sidecar (which
    wins), then, for a filtered copy, its crawled original's. `_folder` is its query or seed folder."""
    entry, index_folder, index_name = indexes.lookup(path)
    meta = dict(entry or {})
    base = index_folder or folder
    if index_name == original_layout.FILTERED_INDEX:
        meta["filter_source"] = meta.pop("source", None)  # a file path, not a URL
        meta = {**_filtered_source_metadata(entry, index_folder, indexes), **meta}
    meta.update(original_layout.read_sidecar(path))
    meta.setdefault("_folder", original_layout.folder_name(path, base))
    if index_name:
        meta["_index"] = index_name
    return meta


def sighting_for_file(path, meta, label):
    """A folder file's Source: the original scripts' metadata says where it really came from.

    The provider is the one a SceneImg sidecar names; else a seed means reverse-image search and a
    query a keyword crawl; else an original sidecar tells them apart (only the keyword crawler wrote
    content_type, status and final_url), and its folder is the sanitized query or seed name.
    """
    url = _first(meta, URL_KEYS, original_layout.is_web_url)
    seed = _first(meta, SEED_KEYS)
    query = _first(meta, QUERY_KEYS)
    folder = meta.get("_folder") or ""
    provider = meta.get("provider") if meta.get("provider") in PROVIDERS else Source.Provider.FOLDER
    if provider == Source.Provider.FOLDER and url:
        if seed:
            provider = Source.Provider.BAIDU_SIMILAR
        elif query or any(k in meta for k in original_layout.KEYWORD_SIDECAR_KEYS):
            provider = Source.Provider.BAIDU
        elif meta.get("sha1") or meta.get("url_md5"):  # an original file without the crawler's keys
            in_similar = "search_by_images" in Path(meta.get("filtered_from") or path).parts
            provider = Source.Provider.BAIDU_SIMILAR if in_similar or "width" in meta else Source.Provider.BAIDU
    if provider == Source.Provider.BAIDU and not query and folder:
        query = queries.query_for_folder(folder)
    if provider == Source.Provider.BAIDU_SIMILAR and not seed and folder:
        seed = folder
    rank = meta.get("rank")
    metadata = {k: v for k, v in meta.items() if k != "_folder"}
    extra = {"label": label, "metadata": metadata} if metadata else {"label": label}
    if folder and provider != Source.Provider.FOLDER:
        extra["folder"] = folder
    return Sighting(
        provider=provider, url=url, page_url=_first(meta, PAGE_KEYS, original_layout.is_web_url),
        title=_first(meta, TITLE_KEYS), query=query, seed_name=seed, rank=rank if isinstance(rank, int) else None,
        path=str(path), extra=extra,
    )


def list_images(folder, recursive):
    """(image files to import, image links that point outside the folder). A link leaving the folder
    would import whatever it names (/etc, another user's files): it is skipped, not followed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportSourceError(f"{folder} is not a folder")
    root = folder.resolve()
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    files, outside = [], []
    for p in sorted(pattern):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        (files if p.resolve().is_relative_to(root) else outside).append(p)
    return files, outside


def note_outside(run, outside):
    """Say on the run which links were skipped: not an error, but a person should know."""
    if run is not None and outside:
        text = f"skipped {len(outside)} link(s) pointing outside the folder, e.g. {outside[0]} -> {outside[0].resolve()}"
        Run.objects.filter(pk=run.pk).update(notice=text[:500])


def folder_todo(path, files, label, recursive):
    """(file, Sighting) for each file: the metadata the original scripts wrote beside it."""
    indexes = original_layout.Indexes()
    indexes.add_tree(path, recursive)
    return [(str(f), sighting_for_file(f, file_metadata(f, Path(path), indexes), label)) for f in files]


def prepare_file(todo, *, filters):
    """Read and prepare one folder file: an Item for batches.write (no database here)."""
    path, sighting = todo
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Item(sighting, outcome=Source.Outcome.ERROR, reason=f"could not read: {exc}")
    try:
        prepared, reason = prepare(data, filters)
    except Exception as exc:  # one bad file must not lose the others
        log.exception("import of %s failed", path)
        return Item(sighting, outcome=Source.Outcome.ERROR, reason=f"unexpected error: {exc}"[:2000])
    return Item(sighting, prepared=prepared, outcome="" if prepared else Source.Outcome.INVALID,
                        reason=reason or "")


def _dry_run_folder(tracker, todo, filters):
    seen = set()
    for path, _sighting in todo:
        tracker.check_cancelled()
        try:
            norm, _reason = examine(Path(path).read_bytes(), filters)
        except OSError:
            tracker.count("error")
            continue
        if norm is None:
            tracker.count("invalid")
        elif norm.sha256 in seen or Image.objects.filter(sha256=norm.sha256).exists():
            tracker.count("duplicate")
        else:
            tracker.count("stored")
        if norm is not None:
            seen.add(norm.sha256)


def import_folder(tracker, path, *, recursive=False, dry_run=False, label="", filters=None, processes=1,
                  workers=4, files=None):
    """Ingest every image file under `path` (or the given `files` of it: one batch of a queued run).
    With dry_run, count what would happen and write nothing.

    A folder holding an original index file is an original output root: its images sit in
    subfolders, so it is read recursively.
    """
    filters = filters or Filters.from_params()
    recursive = recursive or original_layout.has_index(path)
    if files is None:
        files, outside = list_images(path, recursive)
        tracker.set_total(len(files) + len(outside))
        if outside:
            tracker.count("skipped", len(outside))
            note_outside(tracker.run, outside)
    todo = folder_todo(path, [Path(f) for f in files], label, recursive)
    if dry_run:
        return _dry_run_folder(tracker, todo, filters)
    batches.run(tracker, todo, partial(prepare_file, filters=filters), processes=processes, workers=workers)


def parse_url_list(text):
    """(line number, url, fields) for each entry: plain URLs, or JSONL with url, page_url, title."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                entries.append((number, "", {"error": f"line {number}: not valid JSON ({exc.msg})"}))
                continue
            url = obj.get("url") if isinstance(obj.get("url"), str) else ""
            if not url:
                entries.append((number, "", {"error": f"line {number}: JSON object has no \"url\""}))
                continue
            entries.append((number, url.strip(), {"page_url": str(obj.get("page_url") or ""),
                                                  "title": str(obj.get("title") or "")}))
        else:
            entries.append((number, line, {}))
    return entries


def read_url_file(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportSourceError(f"URL list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportSourceError(f"cannot read URL list {path}: {exc}") from None


def known_images(urls):
    """{url: image id} for the URLs already stored or seen as duplicates, a few queries in all."""
    by_hash = {url_hash(u): u for u in urls if u}
    found = {}
    keys = list(by_hash)
    for i in range(0, len(keys), 500):
        rows = (Source.objects.filter(url_hash__in=keys[i:i + 500], image__isnull=False,
                                      outcome__in=[Source.Outcome.STORED, Source.Outcome.DUPLICATE])
                .values_list("url_hash", "image_id"))
        for h, image_id in rows:
            found.setdefault(by_hash[h], image_id)
    return found


_process_fetcher = None


def url_sighting(entry, label):
    number, url, fields = entry[:3]
    if "error" in fields:
        return Sighting(provider=Source.Provider.URL_LIST, extra={"label": label, "line": number})
    return Sighting(provider=Source.Provider.URL_LIST, url=url, page_url=fields.get("page_url", ""),
                    title=fields.get("title", ""), rank=number, extra={"label": label})


def prepare_url_entry(entry, *, label, filters, fetcher=None, check=None, per_host=None):
    """Fetch and prepare one URL-list entry (number, url, fields, id of the image it already names or
    None): an Item for batches.write. No database here, so a pool of processes can run it."""
    global _process_fetcher
    number, url, fields, seen = entry
    sighting = url_sighting(entry, label)
    if "error" in fields:
        return Item(sighting, outcome=Source.Outcome.INVALID, reason=fields["error"])
    if seen:
        return Item(sighting, outcome=Source.Outcome.DUPLICATE, image_id=seen,
                            reason=f"URL already seen (#{seen})")
    if check is not None:
        check()
    if fetcher is None:
        fetcher = _process_fetcher = _process_fetcher or Fetcher(per_host=per_host)
    try:
        resp = fetcher.get(url, check=check)
        extra = {"fetched_from": url, "content_type": resp.headers.get("Content-Type", "")}
        prepared, reason = prepare(resp.content, filters)
    except FetchError as exc:
        return Item(sighting, outcome=Source.Outcome.ERROR, reason=str(exc))
    except Cancelled:
        raise
    except Exception as exc:  # one bad entry must not lose the others
        log.exception("import of line %s failed", number)
        return Item(sighting, outcome=Source.Outcome.ERROR, reason=f"unexpected error: {exc}"[:2000])
    return Item(sighting, prepared=prepared, outcome="" if prepared else Source.Outcome.INVALID,
                        reason=reason or "", extra=extra)


def _dry_run_urls(tracker, entries, workers):
    def one(entry):
        tracker.check_cancelled()
        tracker.count("invalid" if "error" in entry[2] else "duplicate" if known_url(entry[1]) else "stored")

    with db_pool(workers, "import-urls") as pool:
        for _ in pool.map(one, entries):
            pass


def import_urls(tracker, entries, *, dry_run=False, label="", workers=8, fetcher=None, filters=None, processes=1,
                batch=False, per_host=None):
    """Fetch each URL through the guarded fetcher and ingest it, `workers` at once in each of
    `processes` processes. With `batch`, the entries are one batch of a queued run (its total is set)."""
    if not batch:
        tracker.set_total(len(entries))
    filters = filters or Filters.from_params()
    if dry_run:
        return _dry_run_urls(tracker, entries, workers)
    seen = known_images([url for _, url, fields in entries if "error" not in fields])
    todo = [(number, url, fields, seen.get(url)) for number, url, fields in entries]
    if processes > 1:
        prepare_one = partial(prepare_url_entry, label=label, filters=filters, per_host=per_host)
    else:
        prepare_one = partial(prepare_url_entry, label=label, filters=filters, check=tracker.check_cancelled,
                              fetcher=fetcher or Fetcher(per_host=per_host))
    batches.run(tracker, todo, prepare_one, processes=processes, workers=workers)
    tracker.check_cancelled()  # the run ends as cancelled, not done
