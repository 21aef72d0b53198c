"""`--output` folders in the original scripts' layout, so their downstream tools keep working on them.

crawl_baidu writes `<DIR>/<sanitized query>[/<label>]/<sha1>.<ext>`, search_by_images
`<DIR>/<sanitized seed stem>[/<label>]/<sha1>.<ext>`; beside each file a sidecar `<sha1>.json` with the
original's keys first (source, sha1, and for a keyword crawl content_type, status and final_url, then
width, height, format) and SceneImg's after them; and one `_global_index.jsonl` line per file at DIR
(sha1, url_md5, url, path relative to DIR, timestamp). The sha1 is of the bytes written, as the
original's was of the bytes it saved.
"""
import hashlib
import json
from pathlib import Path

from django.core.files.storage import default_storage

from crawl import original

FORMATS = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
           "image/gif": "GIF", "image/bmp": "BMP"}


class OutputRootError(Exception):
    """The output folder chosen at launch is gone or is no longer the folder it was."""


def checked_root(output, *, create=False):
    """The output root, checked again at write time. It was resolved (links followed) and checked
    against the allowed roots at launch; one replaced by a link to somewhere else since then fails here,
    and so does one removed while files are being written (it is not silently made again). With
    `create`, at the start of a query or seed, a missing root is made in its real parent folder."""
    root = Path(output)
    if create and not root.exists() and not root.is_symlink() and root.parent.resolve() == root.parent:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.mkdir(exist_ok=True)
    if root.is_symlink() or (root.exists() and root.resolve() != root):
        raise OutputRootError(f"output folder {output} now leads to {root.resolve()} (replaced after launch); "
                              "nothing written")
    if not root.is_dir():
        raise OutputRootError(f"output folder {output} no longer exists (removed after launch); nothing written")
    return root


def _inside(root, path):
    if not Path(path).resolve().is_relative_to(root):
        raise OutputRootError(f"{path} now leads outside the output folder {root} (replaced after launch); "
                              "nothing written")


def output_folder(output, name, label=""):
    """The folder the original would have written a query's or a seed's files to (a label below it)."""
    root = checked_root(output, create=True)
    folder = root / original.sanitize(name)
    if label:
        # A label is typed by a person (or a web form): like the query, it names one folder, never a path.
        folder = folder / original.sanitize(label)
    folder.mkdir(parents=True, exist_ok=True)
    _inside(root, folder)
    return folder


def write_output(source, output, folder, extra, *, keyword):
    """Write a stored Source's file, its sidecar and its index line; returns the file's path."""
    image = source.image
    with default_storage.open(image.file.name, "rb") as fh:
        data = fh.read()
    sha1 = hashlib.sha1(data).hexdigest()
    _inside(checked_root(output), folder)
    target = Path(folder) / f"{sha1}.{'png' if image.format == 'png' else 'jpg'}"
    new = not target.exists()
    if new:
        target.write_bytes(data)
    content_type = source.extra.get("content_type") or ""
    fetched = source.extra.get("fetched_from") or source.url
    sidecar = {"source": source.url, "sha1": sha1}
    if keyword:  # only the keyword crawler recorded the response
        sidecar.update({"content_type": content_type or None, "status": 200, "final_url": fetched})
    sidecar.update({
        "width": image.width, "height": image.height,
        "format": FORMATS.get(content_type.split(";")[0].strip().lower(), image.format.upper()),
        # SceneImg's, beside the original's
        **extra, "page_url": source.page_url, "title": source.title, "rank": source.rank,
        "sha256": image.sha256, "image_id": image.pk, "source_id": source.pk, "fetched_from": fetched,
    })
    target.with_suffix(".json").write_text(json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8")
    if new:
        relative = str(target.relative_to(Path(output)))
        original.append_index(output, original.GLOBAL_INDEX, original.global_index_entry(sha1, source.url, relative))
    return target
