"""Which images a filter_vlm run judges: a folder, a manifest, or a selection from the collection.

Files are matched to stored images by their bytes (sha256), or by the bytes ingest would store (after
EXIF rotation or re-encoding); a file not in the collection yet goes through the one ingest path
(crawl.ingest), so a judged image is always a stored Image with its own verdict rows. Each input keeps
the caller's identifier (a manifest's `id`, a file's stem) for the output files; a database id is
read only from an explicit `image_id`.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Q

from crawl.ingest import Sighting, examine, ingest_bytes
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
    # inputs that could not become images: {"id", "path" or "image_id", "error"}
    errors: list = field(default_factory=list)
    # one per input that became an image, in input order: {"id": the caller's identifier, "image_id",
    # "image_path": the path as given}; empty for a selection from the collection
    entries: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def as_json(self):
        return {"ids": self.ids, "names": {str(k): v for k, v in self.names.items()}, "errors": self.errors,
                "entries": self.entries}


@dataclass
class ManifestEntry:
    """One candidate of an original manifest: the caller's identifier and a file, or an explicit image id."""

    identifier: str
    path: Path | None = None
    given_path: str = ""  # as written in the manifest, for the output's image_path
    image_id: int | None = None
    problem: str = ""


# The original manifest's keys: the caller's identifier, and the file under one of three names.
IDENTIFIER_KEYS = ("id", "identifier")
PATH_KEYS = ("image_path", "image", "path", "file", "src")
ID_KEY = "image_id"  # a database id is only ever read from this key


def scan_dir(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--input-dir {directory} is not a folder")
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _jsonl_rows(path, text):
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{path} line {n}: not JSON") from None
    return rows


def _is_entry(obj):
    """A single manifest entry (one-line JSONL) rather than the original's {"id": {...}} mapping."""
    return any(k in obj and isinstance(obj[k], (str, int)) for k in (*PATH_KEYS, ID_KEY))


def _manifest_rows(path, text):
    if path.suffix.lower() == ".jsonl":
        return _jsonl_rows(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl_rows(path, text)  # JSONL under another suffix
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise InputError(f"{path}: a manifest is a JSON list, a JSON object or JSONL")
    if isinstance(data.get("images"), list):
        return data["images"]
    if _is_entry(data):
        return [data]
    # The original's mapping: {"caller id": {...entry...}} or {"caller id": "path"}.
    return [{"id": key, **value} if isinstance(value, dict) else {"id": key, "image_path": value}
            for key, value in data.items()]


def _manifest_entry(index, row, manifest):
    fallback = f"row-{index:05d}"  # the original's name for an entry without an identifier
    if isinstance(row, str):
        row = {"image_path": row}
    if not isinstance(row, dict):
        return ManifestEntry(fallback, problem=f"not an entry: {str(row)[:100]} (a database id goes under "
                                               f"\"{ID_KEY}\")")
    identifier = next((str(row[k]) for k in IDENTIFIER_KEYS if row.get(k) not in (None, "")), fallback)
    entry = ManifestEntry(identifier)
    if row.get(ID_KEY) not in (None, ""):
        value = row[ID_KEY]
        if isinstance(value, int) and not isinstance(value, bool):
            entry.image_id = value
        elif isinstance(value, str) and value.strip().isdigit():
            entry.image_id = int(value.strip())
        else:
            entry.problem = f"{ID_KEY} {str(value)[:40]!r} is not a number"
        return entry
    given = next((row[k] for k in PATH_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
    if given is None:
        entry.problem = f"no image_path, image or path (nor {ID_KEY}) in {str(row)[:100]}"
        return entry
    p = Path(given).expanduser()
    if not p.is_absolute() and not p.exists():
        p = manifest.parent / p  # relative to the manifest, when not relative to the working folder
    entry.path, entry.given_path = p, given
    return entry


def read_manifest(path):
    """ManifestEntry per candidate of a manifest in the original's formats: a JSON list, JSONL (one line
    or many), or the {"id": {...}} mapping; each entry names its file under image_path, image or path,
    or a stored image under image_id. Entries that name neither come back with their problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--input-manifest {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--input-manifest {path}: cannot read it: {exc}") from None
    return [_manifest_entry(i, row, path) for i, row in enumerate(_manifest_rows(path, text))]


def resolve_paths(paths, selection):
    """(image id or None, error) per file, aligned with `paths`: known pictures by content, new files ingested.

    A file is known when its bytes are a stored image's, or when ingest would store it as one (ingest
    may re-encode: EXIF rotation, PNG to JPEG). Original names are added to selection.names.
    """
    paths = [Path(p).resolve() for p in paths]
    results = {}
    digests = {}
    for p in dict.fromkeys(paths):
        try:
            digests[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as exc:
            results[p] = (None, f"cannot read: {exc.strerror or exc}")
    by_sha = {}
    values = list(set(digests.values()))
    for i in range(0, len(values), CHUNK):
        by_sha.update(Image.objects.filter(sha256__in=values[i:i + CHUNK]).values_list("sha256", "id"))
    known = ingested = 0
    for p, digest in digests.items():
        if digest in by_sha:
            results[p] = (by_sha[digest], "")
            known += 1
            continue
        image_id, error, created = ingest_file(p)
        results[p] = (image_id, error)
        if image_id is not None:
            if created:
                ingested += 1
            else:
                known += 1
    for p in paths:
        image_id = results[p][0]
        if image_id is not None:
            selection.names.setdefault(image_id, p.name)
    selection.stats.update(paths=len(results), known=known, ingested=ingested,
                           failed=sum(1 for image_id, _ in results.values() if image_id is None))
    return [results[p] for p in paths]


def ingest_file(path):
    """(image id, "", newly stored?) after the one ingest path, or (None, why not, False).

    A picture already stored (the same after normalising) is found without a new Source row."""
    try:
        data = path.read_bytes()
        norm, reason = examine(data)
        if norm is not None:
            existing = Image.objects.filter(sha256=norm.sha256).values_list("id", flat=True).first()
            if existing is not None:
                return existing, "", False
        source = ingest_bytes(data, Sighting(provider=Source.Provider.FOLDER, path=str(path)))
    except Exception as exc:  # a bad file must not stop the run: it is listed in the errors
        return None, f"ingest failed: {type(exc).__name__}: {exc}", False
    if source.image_id is None:
        return None, f"ingest: {source.outcome}{': ' + source.reason if source.reason else ''}", False
    return source.image_id, "", source.outcome == Source.Outcome.STORED


def _explicit_inputs(selection, input_dir, input_manifest):
    """(entries, errors) for --input-dir or --input-manifest, in input order."""
    if input_dir:
        files = scan_dir(input_dir)
        entries = [ManifestEntry(p.stem, path=p, given_path=str(p)) for p in files]  # the original's ids
    else:
        entries = read_manifest(input_manifest)
    with_path = [e for e in entries if e.path is not None and not e.problem]
    resolved = dict(zip(map(id, with_path), resolve_paths([e.path for e in with_path], selection), strict=True))
    wanted = [e.image_id for e in entries if e.image_id is not None]
    existing = set()
    for i in range(0, len(wanted), CHUNK):
        existing.update(Image.objects.filter(pk__in=wanted[i:i + CHUNK]).values_list("id", flat=True))
    ok = []
    for e in entries:
        if e.problem:
            selection.errors.append({"id": e.identifier, "error": e.problem})
        elif e.image_id is not None:
            if e.image_id in existing:
                ok.append({"id": e.identifier, "image_id": e.image_id, "image_path": ""})
            else:
                selection.errors.append({"id": e.identifier, "image_id": e.image_id, "error": "no such image"})
        else:
            image_id, error = resolved[id(e)]
            if image_id is None:
                selection.errors.append({"id": e.identifier, "path": e.given_path, "error": error})
            else:
                ok.append({"id": e.identifier, "image_id": image_id, "image_path": e.given_path})
    return ok


def select(*, input_dir=None, input_manifest=None, run=None, decision=None, passed_clip=False, limit=None,
           judged_by=None):
    """The images to judge, in a stable order, each once.

    `judged_by` (prompt version id, backend, model): only images with a verdict (not an error) from that
    side, so a run with a new --min-score re-decides them without asking the model again."""
    if not any([input_dir, input_manifest, run, decision, passed_clip, judged_by]):
        raise InputError("say what to judge: --input-dir, --input-manifest, or a selection "
                         "(--run, --decision, --passed-clip, --judged)")
    if input_dir and input_manifest:
        raise InputError("give --input-dir or --input-manifest, not both")
    if decision and decision not in DECISION_CHOICES:
        raise InputError(f"--decision must be one of {', '.join(DECISION_CHOICES)}")
    selection = Selection()
    entries = None
    if input_dir or input_manifest:
        entries = _explicit_inputs(selection, input_dir, input_manifest)

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
    if judged_by:
        version_id, backend, model = judged_by
        qs = qs.filter(pk__in=VlmVerdict.objects.filter(
            prompt_version_id=version_id, backend=backend, model=model, error="").values("image_id"))

    if entries is None:
        ids = list(qs.order_by("id").values_list("id", flat=True))
        if limit:
            ids = ids[:limit]
    else:
        if run or decision not in (None, "any") or passed_clip or judged_by:
            candidates = list(dict.fromkeys(e["image_id"] for e in entries))
            allowed = set()
            for i in range(0, len(candidates), CHUNK):
                allowed.update(qs.filter(pk__in=candidates[i:i + CHUNK]).values_list("id", flat=True))
            entries = [e for e in entries if e["image_id"] in allowed]
        if limit:  # the original's --limit: the first N candidates
            entries = entries[:limit]
        selection.entries = entries
        ids = list(dict.fromkeys(e["image_id"] for e in entries))
    selection.ids = ids
    keep = set(ids)
    selection.names = {k: v for k, v in selection.names.items() if k in keep}
    return selection


def _sighted_in(run_id):
    return Source.objects.filter(run_id=run_id, image__isnull=False).values("image_id")


def _verdicted_in(run_id):
    return VlmVerdict.objects.filter(run_id=run_id).values("image_id")
