"""Import stages: a folder of images (including folders the original scripts wrote) and URL lists."""
import json
import logging
from pathlib import Path

from crawl.fetcher import Fetcher
from crawl.ingest import Filters, Sighting, examine, ingest_bytes, ingest_url, known_url
from crawl.models import Source
from curation.models import Image
from curation.threads import db_pool

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
INDEX_FILES = ("_global_index.jsonl", "_filtered_index.jsonl")
URL_KEYS = ("url", "source_url", "obj_url", "objURL", "image_url", "img_url", "src")
PAGE_KEYS = ("page_url", "fromURL", "from_url", "referer", "page")
TITLE_KEYS = ("title", "fromPageTitle", "fromPageTitleEnc")
QUERY_KEYS = ("query", "keyword", "word")
SEED_KEYS = ("seed", "seed_name", "seed_path")


class ImportSourceError(Exception):
    """The import as a whole cannot proceed (missing folder, unreadable list)."""


def _first(meta, keys):
    for key in keys:
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _read_index(folder):
    """Metadata from the original scripts' index files, by file name."""
    by_name = {}
    for index_name in INDEX_FILES:
        index = folder / index_name
        if not index.is_file():
            continue
        for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            name = _first(entry, ("path", "file", "filename", "file_name", "name"))
            if name:
                by_name.setdefault(Path(name).name, entry)
    return by_name


def _sidecar(path):
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8", errors="replace"))
    except (json.JSONDecodeError, OSError):
        return {"_sidecar_error": "unreadable sidecar JSON"}
    return meta if isinstance(meta, dict) else {}


def sighting_for_file(path, meta, label):
    """A folder file's Source: the original scripts' metadata says where it really came from."""
    url = _first(meta, URL_KEYS)
    seed = _first(meta, SEED_KEYS)
    query = _first(meta, QUERY_KEYS)
    provider = Source.Provider.FOLDER
    if url and seed:
        provider = Source.Provider.BAIDU_SIMILAR
    elif url and query:
        provider = Source.Provider.BAIDU
    rank = meta.get("rank")
    return Sighting(
        provider=provider, url=url, page_url=_first(meta, PAGE_KEYS), title=_first(meta, TITLE_KEYS),
        query=query, seed_name=seed, rank=rank if isinstance(rank, int) else None, path=str(path),
        extra={"label": label, "metadata": meta} if meta else {"label": label},
    )


def list_images(folder, recursive):
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportSourceError(f"{folder} is not a folder")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def import_folder(tracker, path, *, recursive=False, dry_run=False, label="", filters=None):
    """Ingest every image file under `path`. With dry_run, count what would happen and write nothing."""
    run = tracker.run
    files = list_images(path, recursive)
    tracker.set_total(len(files))
    filters = filters or Filters.from_params()
    indexes = {}
    seen_in_dry_run = set()
    for file in files:
        tracker.check_cancelled()
        if file.parent not in indexes:
            indexes[file.parent] = _read_index(file.parent)
        meta = {**indexes[file.parent].get(file.name, {}), **_sidecar(file)}
        sighting = sighting_for_file(file, meta, label)
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
            tracker.check_cancelled()
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
        except Exception as exc:  # one bad entry must not lose the others
            log.exception("import of line %s failed", number)
            tracker.count("error")
            if not dry_run:
                Source.objects.create(run=run, provider=Source.Provider.URL_LIST, url=url, outcome="error",
                                      reason=f"unexpected error: {exc}"[:2000], extra={"label": label})

    with db_pool(workers, "import-urls") as pool:
        for _ in pool.map(one, entries):
            pass
