"""Import stages: a folder of images (including folders the original scripts wrote) and URL lists."""
import json
import logging
from pathlib import Path

from crawl import original as original_layout
from crawl import queries
from crawl.fetcher import Fetcher
from crawl.ingest import Filters, Sighting, examine, ingest_bytes, ingest_url, known_url
from crawl.models import Source
from curation.models import Image
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
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportSourceError(f"{folder} is not a folder")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def import_folder(tracker, path, *, recursive=False, dry_run=False, label="", filters=None):
    """Ingest every image file under `path`. With dry_run, count what would happen and write nothing.

    A folder holding an original index file is an original output root: its images sit in
    subfolders, so it is read recursively.
    """
    run = tracker.run
    recursive = recursive or original_layout.has_index(path)
    files = list_images(path, recursive)
    tracker.set_total(len(files))
    filters = filters or Filters.from_params()
    indexes = original_layout.Indexes()
    indexes.add_tree(path, recursive)
    seen_in_dry_run = set()
    for file in files:
        tracker.check_cancelled()
        sighting = sighting_for_file(file, file_metadata(file, Path(path), indexes), label)
        try:
            data = file.read_bytes()
        except OSError as exc:
            if not dry_run:
                Source.objects.create(run=run, provider=sighting.provider, path=str(file),
                                      outcome=Source.Outcome.ERROR, reason=f"could not read: {exc}")
            tracker.count("error")
            continue
        if dry_run:
            norm, _reason = examine(data, filters)
            if norm is None:
                tracker.count("invalid")
            elif norm.sha256 in seen_in_dry_run or Image.objects.filter(sha256=norm.sha256).exists():
                tracker.count("duplicate")
            else:
                tracker.count("stored")
            if norm is not None:
                seen_in_dry_run.add(norm.sha256)
            continue
        ingest_bytes(data, sighting, run=run, filters=filters, tracker=tracker)


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


def import_urls(tracker, entries, *, dry_run=False, label="", workers=8, fetcher=None, filters=None):
    """Fetch each URL through the guarded fetcher and ingest it, several at once."""
    run = tracker.run
    tracker.set_total(len(entries))
    fetcher = fetcher or Fetcher()
    filters = filters or Filters.from_params()

    def one(entry):
        number, url, fields = entry
        try:
            tracker.check_cancelled(fresh=True)
            if "error" in fields:
                if not dry_run:
                    Source.objects.create(run=run, provider=Source.Provider.URL_LIST, outcome="invalid",
                                          reason=fields["error"], extra={"label": label, "line": number})
                tracker.count("invalid")
                return
            if dry_run:
                tracker.count("duplicate" if known_url(url) else "stored")
                return
            sighting = Sighting(provider=Source.Provider.URL_LIST, url=url, page_url=fields.get("page_url", ""),
                                title=fields.get("title", ""), rank=number, extra={"label": label})
            ingest_url(url, sighting, fetcher=fetcher, run=run, filters=filters, tracker=tracker)
        except Cancelled:
            return  # not started because of the cancel: no Source, not an error
        except Exception as exc:  # one bad entry must not lose the others
            log.exception("import of line %s failed", number)
            tracker.count("error")
            if not dry_run:
                Source.objects.create(run=run, provider=Source.Provider.URL_LIST, url=url, outcome="error",
                                      reason=f"unexpected error: {exc}"[:2000], extra={"label": label})

    with db_pool(workers, "import-urls") as pool:
        for _ in pool.map(one, entries):
            pass
    tracker.check_cancelled()  # the run ends as cancelled, not done
