"""Which images a filter_vlm run judges: a folder, a manifest, or a selection from the collection.

Files are matched to stored images by their bytes (sha256) or by an earlier folder import of the
same path; a file not in the collection yet goes through the one ingest path (crawl.ingest), so a
judged image is always a stored Image with its own verdict rows.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Q

from crawl.ingest import Sighting, ingest_bytes
from crawl.models import Source
from curation.models import FilterScore, Image
from vlm.models import VlmVerdict

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DECISION_CHOICES = ("keep", "reject", "undecided", "any")
CHUNK = 1000


class InputError(ValueError):
    pass


@dataclass
class Selection:
    ids: list = field(default_factory=list)  # image ids in input order, each once
    names: dict = field(default_factory=dict)  # image id -> original file name (for --keep-dir copies)
    errors: list = field(default_factory=list)  # inputs that could not become images: {"path"|"image_id", "error"}
    stats: dict = field(default_factory=dict)

    def as_json(self):
        return {"ids": self.ids, "names": {str(k): v for k, v in self.names.items()}, "errors": self.errors}


def scan_dir(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--input-dir {directory} is not a folder")
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_manifest(path):
    """Entries from a JSON list (or {"images": [...]}) or JSONL: ids, paths, or objects holding either."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--input-manifest {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("images", data.get("items"))
        if not isinstance(data, list):
            raise InputError(f"{path}: a JSON manifest must be a list (or an object with an `images` list)")
        rows = data
    except json.JSONDecodeError:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputError(f"{path} line {n}: not JSON") from None
    entries = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, dict):
            value = next((row[k] for k in ("image_id", "id", "path", "file", "image", "src") if row.get(k)), None)
        else:
            value = row
        if isinstance(value, bool) or value is None:
            raise InputError(f"{path} entry {n}: no image id or path in {str(row)[:100]}")
        if isinstance(value, int):
            entries.append(("id", value))
        elif isinstance(value, str) and value.strip().isdigit():
            entries.append(("id", int(value.strip())))
        elif isinstance(value, str):
            p = Path(value).expanduser()
            if not p.is_absolute() and not p.exists():
                p = path.parent / p  # relative to the manifest, when not relative to the working folder
            entries.append(("path", p))
        else:
            raise InputError(f"{path} entry {n}: expected an image id or a path, got {str(row)[:100]}")
    return entries


def resolve_paths(paths, selection):
    """Image ids for files, aligned with `paths` (None where a file failed), ingesting new files.

    Failures are added to selection.errors, original names to selection.names.
    """
    paths = [Path(p).resolve() for p in paths]
    digests = {}
    for p in dict.fromkeys(paths):
        try:
            digests[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as exc:
            digests[p] = None
            selection.errors.append({"path": str(p), "error": f"cannot read: {exc.strerror or exc}"})
    by_sha = {}
    values = list({d for d in digests.values() if d})
    for i in range(0, len(values), CHUNK):
        by_sha.update(Image.objects.filter(sha256__in=values[i:i + CHUNK]).values_list("sha256", "id"))
    found = {p: by_sha[d] for p, d in digests.items() if d in by_sha}
    rest = [str(p) for p, d in digests.items() if d and p not in found]
    for i in range(0, len(rest), CHUNK):
        # Ingest may re-encode a file (EXIF rotation, PNG to JPEG); the earlier folder sighting still names it.
        for path, image_id in (Source.objects.filter(provider=Source.Provider.FOLDER, path__in=rest[i:i + CHUNK],
                                                      image__isnull=False)
                               .order_by("id").values_list("path", "image_id")):
            found[Path(path)] = image_id
    known, ingested = len(found), 0
    for p, digest in digests.items():
        if digest is None or p in found:
            continue
        image_id, error = ingest_file(p)
        if image_id is None:
            selection.errors.append({"path": str(p), "error": error})
            found[p] = None
        else:
            found[p] = image_id
            ingested += 1
    for p in paths:
        if found.get(p) is not None:
            selection.names.setdefault(found[p], p.name)
    selection.stats.update(paths=len(digests), known=known, ingested=ingested,
                           failed=sum(1 for p in digests if found.get(p) is None))
    return [found.get(p) for p in paths]


def ingest_file(path):
    """(image id, "") after the one ingest path, or (None, why not)."""
    try:
        source = ingest_bytes(path.read_bytes(), Sighting(provider=Source.Provider.FOLDER, path=str(path)))
    except Exception as exc:  # a bad file must not stop the run: it is listed in the errors
        return None, f"ingest failed: {type(exc).__name__}: {exc}"
    if source.image_id is None:
        return None, f"ingest: {source.outcome}{': ' + source.reason if source.reason else ''}"
    return source.image_id, ""


def select(*, input_dir=None, input_manifest=None, run=None, decision=None, passed_clip=False, limit=None):
    """The images to judge, in a stable order, each once."""
    if not any([input_dir, input_manifest, run, decision, passed_clip]):
        raise InputError("say what to judge: --input-dir, --input-manifest, or a selection "
                         "(--run, --decision, --passed-clip)")
    if input_dir and input_manifest:
        raise InputError("give --input-dir or --input-manifest, not both")
    if decision and decision not in DECISION_CHOICES:
        raise InputError(f"--decision must be one of {', '.join(DECISION_CHOICES)}")
    selection = Selection()
    explicit = None
    if input_dir:
        explicit = [i for i in resolve_paths(scan_dir(input_dir), selection) if i is not None]
    elif input_manifest:
        entries = read_manifest(input_manifest)
        resolved = iter(resolve_paths([v for kind, v in entries if kind == "path"], selection))
        wanted = [v for kind, v in entries if kind == "id"]
        existing = set()
        for i in range(0, len(wanted), CHUNK):
            existing.update(Image.objects.filter(pk__in=wanted[i:i + CHUNK]).values_list("id", flat=True))
        explicit = []
        for kind, value in entries:
            image_id = next(resolved) if kind == "path" else value
            if kind == "id" and value not in existing:
                selection.errors.append({"image_id": value, "error": "no such image"})
            elif image_id is not None:
                explicit.append(image_id)

    qs = Image.objects.all()
    if run:
        qs = qs.filter(
            Q(pk__in=_sighted_in(run)) | Q(pk__in=FilterScore.objects.filter(run_id=run).values("image_id"))
            | Q(pk__in=_verdicted_in(run))
        )
    if decision == "undecided":
        qs = qs.filter(final_decision__isnull=True)
    elif decision in ("keep", "reject"):
        qs = qs.filter(final_decision=decision)
    if passed_clip:
        qs = qs.filter(pk__in=FilterScore.objects.filter(passed=True).values("image_id"))

    if explicit is None:
        ids = list(qs.order_by("id").values_list("id", flat=True))
    else:
        ids = list(dict.fromkeys(explicit))
        if run or decision not in (None, "any") or passed_clip:
            allowed = set()
            for i in range(0, len(ids), CHUNK):
                allowed.update(qs.filter(pk__in=ids[i:i + CHUNK]).values_list("id", flat=True))
            ids = [i for i in ids if i in allowed]
    if limit:
        ids = ids[:limit]
    selection.ids = ids
    keep = set(ids)
    selection.names = {k: v for k, v in selection.names.items() if k in keep}
    return selection


def _sighted_in(run_id):
    return Source.objects.filter(run_id=run_id, image__isnull=False).values("image_id")


def _verdicted_in(run_id):
    return VlmVerdict.objects.filter(run_id=run_id).values("image_id")
