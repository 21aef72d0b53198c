"""Provenance of a snapshot: per image, where it came from and what judged it; per snapshot, what
produced the decisions (code version, CLIP model and prompt set, and what crawl and vlm register,
such as the VLM prompt texts).

Per-image rows are read from the frozen records only, so an old snapshot's sheet never changes. The
snapshot's own part is gathered once, when it is frozen, and kept on the Snapshot.
"""
import importlib.metadata
import re
import subprocess
from pathlib import Path

from django.conf import settings

from curation import registry
from curation.clip import ModelConfigError, load_prompt_set
from curation.models import Image

ROOT = Path(__file__).resolve().parent.parent
OWN_COLUMNS = ("image_id", "sha256", "file_name", "first_seen", "final_decision", "auto_decision",
               "human_decision", "auto_reason")
PROMPT_SET_IN_KEY = re.compile(r"prompts-([\w.-]+)")


def columns():
    """curation's columns, then crawl's (sources, pages, queries or seeds) and vlm's (prompt version, model)."""
    return OWN_COLUMNS + tuple(c for p in registry.provenance_fields() for c in p.columns)


def row(rec):
    """One image's provenance from its frozen export record."""
    out = {c: rec.get(c) for c in OWN_COLUMNS}
    for p in registry.provenance_fields():
        out.update(p.row(rec))
    return out


def snapshot_provenance(snapshot, scorer_keys):
    """What produced this snapshot's decisions, as a JSON-ready dict kept on the snapshot."""
    sheet = {"code_version": code_version(), "clip": clip_provenance(scorer_keys)}
    images = Image.objects.filter(snapshot_rows__snapshot=snapshot)
    for p in registry.provenance_fields():
        if p.snapshot is not None:
            sheet.update(p.snapshot(images))
    return sheet


def _git(*args):
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version():
    """The git commit of this checkout (and whether tracked files differ from it), and the package version."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    try:
        package = importlib.metadata.version("sceneimg")
    except importlib.metadata.PackageNotFoundError:
        package = None
    return {"git_commit": commit, "git_dirty": bool(dirty) if commit else None, "package_version": package}


def clip_provenance(scorer_keys):
    """The CLIP settings now, the scorer keys the snapshot's scores were made under, and the sentences of
    each prompt set those keys name."""
    prompt_sets = {}
    for version in sorted({m for key in scorer_keys for m in PROMPT_SET_IN_KEY.findall(key)}):
        try:
            prompt_sets[version] = {label: list(s) for label, s in load_prompt_set(version).labels.items()}
        except (ModelConfigError, OSError, ValueError) as exc:
            prompt_sets[version] = {"error": str(exc)}
    return {
        "settings": {"model": settings.SCENEIMG_CLIP_MODEL, "pretrained": settings.SCENEIMG_CLIP_PRETRAINED,
                     "prompt_set": settings.SCENEIMG_CLIP_PROMPTS},
        "scorer_keys": sorted(scorer_keys),
        "prompt_sets": prompt_sets,
    }
