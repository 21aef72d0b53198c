"""The original scripts' folder layout, read by folder imports and written by --output.

crawler.py and search_by_images.py wrote `<root>/<sanitized query or seed stem>[/<timestamp>]/<sha1>.<ext>`
with a sidecar `<sha1>.json` beside each file, and appended one line per saved file to
`<root>/_global_index.jsonl` (sha1, url_md5, url, path relative to the root, timestamp).
filter_basic.py copied kept files flat into its output folder and appended to
`<root>/_filtered_index.jsonl` (sha1, source: the input file's path, target, timestamp).
"""
import fcntl
import hashlib
import json
import re
import time
from pathlib import Path

GLOBAL_INDEX = "_global_index.jsonl"
FILTERED_INDEX = "_filtered_index.jsonl"
INDEX_FILES = (GLOBAL_INDEX, FILTERED_INDEX)
# Keys the crawler's sidecar has and the reverse-image script's has not.
KEYWORD_SIDECAR_KEYS = ("content_type", "status", "final_url")
TIMESTAMP_DIR = re.compile(r"^\d{8}-\d{6}(?:-\d{2})?$")  # search_by_images --timestamp-subdir

_SLUG_DROP = re.compile(r"[^\w\-\u4e00-\u9fff]+")


def sanitize(text):
    """The folder name the original gave a query or a seed: CJK, letters, digits, _ and -, lower case;
    other runs become one dash; a name left empty becomes the first 12 hex digits of its sha1."""
    slug = _SLUG_DROP.sub("-", text.strip().lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-_")
    return slug or hashlib.sha1(text.encode("utf-8", "ignore")).hexdigest()[:12]


def url_md5(url):
    """The original's URL key (url_md5 in _global_index.jsonl)."""
    return hashlib.md5(url.encode("utf-8", errors="ignore")).hexdigest()


def is_web_url(value):
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def read_jsonl(path):
    """The objects of a JSONL file; unreadable lines are skipped, as the original skipped them."""
    entries = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return entries
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def read_sidecar(image_path):
    side = Path(image_path).with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8", errors="replace"))
    except (json.JSONDecodeError, OSError):
        return {"_sidecar_error": "unreadable sidecar JSON"}
    return meta if isinstance(meta, dict) else {}


class Indexes:
    """Entries of the index files in some folders, by the absolute path of the file each describes.

    Paths in an index are relative to the folder holding it (the original's output root), so an
    index at the root describes files in every subfolder.
    """

    def __init__(self):
        self.by_path = {}  # resolved file path -> (entry, index folder, index name)
        self.by_name = {}  # file name -> entry, for entries whose path no longer resolves
        self.read = set()

    def add_folder(self, folder):
        folder = Path(folder).resolve()
        if folder in self.read:
            return
        self.read.add(folder)
        for name in INDEX_FILES:
            key = "target" if name == FILTERED_INDEX else "path"
            for entry in read_jsonl(folder / name):
                rel = entry.get(key)
                if not isinstance(rel, str) or not rel:
                    continue
                target = Path(rel) if Path(rel).is_absolute() else folder / rel
                self.by_path.setdefault(target.resolve(), (entry, folder, name))
                self.by_name.setdefault(Path(rel).name, (entry, folder, name))

    def add_tree(self, root, recursive):
        """The index files in root, in its ancestors (importing one subfolder of an original root) and,
        with recursive, in every folder below it."""
        root = Path(root).resolve()
        for folder in [root, *root.parents]:
            self.add_folder(folder)
        if recursive:
            for index in sorted(p for name in INDEX_FILES for p in root.rglob(name)):
                self.add_folder(index.parent)

    def lookup(self, file):
        file = Path(file).resolve()
        return self.by_path.get(file) or (None, None, None)


def has_index(folder):
    return any((Path(folder) / name).is_file() for name in INDEX_FILES)


def find_file(reference, near):
    """The file a _filtered_index.jsonl `source` names: as given, or relative to the index's folder or
    one of its ancestors (the original ran from the project root: crawledimg/... beside filteredimg/...)."""
    p = Path(reference)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in [Path(near), *Path(near).parents]:
        candidate = base / p
        if candidate.is_file():
            return candidate
    return None


def folder_name(file, base):
    """The query or seed folder a file sits in below an original output root: the first folder under
    `base`, a search_by_images timestamp folder skipped; the base's own name for a file directly in it."""
    try:
        parts = Path(file).resolve().parent.relative_to(Path(base).resolve()).parts
    except ValueError:
        parts = ()
    if parts:
        return parts[0]
    name = Path(base).name
    if TIMESTAMP_DIR.match(name):
        return Path(base).parent.name
    return name


def append_index(root, name, entry):
    """Append one line to an index file, locked so that concurrent writers never interleave lines."""
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def global_index_entry(sha1, url, relative_path):
    return {"sha1": sha1, "url_md5": url_md5(url) if url else None, "url": url, "path": relative_path,
            "timestamp": time.time()}


def filtered_index_entry(sha1, source, target):
    return {"sha1": sha1, "source": source, "target": target, "timestamp": time.time()}
