"""Copies of the seeds among what an expansion found (`remove_seed_duplicates`).

An image within the dHash threshold of a seed is the seed again (recompressed, resized, watermarked):
it is rejected with the reason "copy of seed X". Stored files are kept, so a person can still see
and overturn the decision; a human decision is never overwritten. With an exported folder, the copies
and their sidecar JSON are removed from that folder, as the original script did.

As the original, each seed is compared with what its own expansion found: the images sighted by
reverse-image search from that seed (an imported original folder names the seed by its folder), and,
in an exported folder, the files under the seed's own subfolder. `everywhere` compares every seed
with the whole collection (or the whole folder) instead.
"""
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db.models import Q

from crawl import ingest
from crawl.baidu_similar import SEED_SUFFIXES, hamming
from crawl.models import Source
from crawl.original import sanitize
from curation import decisions
from curation.models import AutoStage, Decision, Image

SEED_COPY_PREFIX = "copy of seed "  # the reason on an image rejected as a copy of a seed


class SeedDirError(Exception):
    pass


@dataclass
class SeedHash:
    name: str
    dhash: int
    sha256s: set = field(default_factory=set)  # the seed's own bytes, raw and normalised

    @property
    def folder(self):
        """The seed's output subfolder, as search_by_images names it."""
        return sanitize(Path(self.name).stem)

    @property
    def sighting_names(self):
        """How Sources name this seed: its file name (an expansion) or its folder (an imported original)."""
        return {self.name, Path(self.name).stem, self.folder}


def _to_unsigned(values):
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def hash_file(path):
    data = Path(path).read_bytes()
    im = ingest.decode(data)
    norm = ingest.normalise(data, im)
    return ingest.compute_dhash(norm.image), {hashlib.sha256(data).hexdigest(), norm.sha256}


def seed_hashes(seed_dir):
    folder = Path(seed_dir)
    if not folder.is_dir():
        raise SeedDirError(f"seed folder {seed_dir} does not exist")
    seeds, skipped = [], []
    # Subfolders too, as the original gathered seeds.
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SEED_SUFFIXES):
        try:
            dhash, shas = hash_file(path)
        except (ingest.InvalidImage, OSError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        seeds.append(SeedHash(path.name, dhash, shas))
    if not seeds:
        raise SeedDirError(f"no readable seed images in {seed_dir}")
    return seeds, skipped


def nearest_seed(candidate, seeds):
    best = min(seeds, key=lambda s: hamming(s.dhash, candidate))
    return best, hamming(best.dhash, candidate)


def _expansion_ids(seed):
    """Images this seed's own reverse-image search found (or an imported original folder of it holds)."""
    return (Source.objects.filter(provider=Source.Provider.BAIDU_SIMILAR, image__isnull=False)
            .filter(Q(seed_name__in=seed.sighting_names) | Q(seed_image__sha256__in=seed.sha256s))
            .values("image_id"))


def find_copies(seeds, threshold, everywhere=False):
    """{image id: (seed, distance)} for the images within `threshold` of a seed (the seeds themselves
    excluded): each seed's own expansion, or with `everywhere` every image against its nearest seed."""
    seed_shas = set().union(*(s.sha256s for s in seeds))
    best = {}
    groups = [(None, Image.objects.all())] if everywhere else [
        (seed, Image.objects.filter(pk__in=_expansion_ids(seed))) for seed in seeds]
    for own_seed, images in groups:
        rows = list(images.values_list("id", "dhash", "sha256"))
        if not rows:
            continue
        hashes = _to_unsigned([r[1] for r in rows])
        for seed in [own_seed] if own_seed is not None else seeds:
            dist = np.bitwise_count(hashes ^ _to_unsigned([seed.dhash])[0]).astype(np.int64)
            for i in np.nonzero(dist <= threshold)[0]:
                image_id, _, sha = rows[i]
                if sha in seed_shas:
                    continue  # the seed's own file in the collection is not a copy of itself
                if image_id not in best or dist[i] < best[image_id][1]:
                    best[image_id] = (seed, int(dist[i]))
    return best


def folder_copies(output_dir, seeds, threshold, seed_dir=None, everywhere=False):
    """[(file, seed, distance)] for image files within the threshold of a seed: the files under each
    seed's own subfolder of output_dir (the original's rule), or with `everywhere` any file under it."""
    found = []
    seed_root = Path(seed_dir).resolve() if seed_dir else None
    groups = [(None, Path(output_dir))] if everywhere else [(seed, Path(output_dir) / seed.folder) for seed in seeds]
    for own_seed, folder in groups:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in SEED_SUFFIXES:
                continue
            if seed_root is not None and path.resolve().is_relative_to(seed_root):
                continue  # never the seeds themselves, even when they sit inside the output folder
            try:
                dhash, _ = hash_file(path)
            except (ingest.InvalidImage, OSError):
                continue
            seed, distance = (own_seed, hamming(own_seed.dhash, dhash)) if own_seed else nearest_seed(dhash, seeds)
            if distance <= threshold:
                found.append((path, seed, distance))
    return found


@dataclass
class Report:
    seeds: int = 0
    skipped_seeds: list = field(default_factory=list)
    copies: int = 0
    rejected: int = 0
    human_kept: int = 0  # copies a person already decided on: left as they are
    files_removed: list = field(default_factory=list)
    dry_run: bool = False
    details: list = field(default_factory=list)  # (image id or file, seed name, distance)


def remove_seed_duplicates(seed_dir, *, threshold=2, output_dir=None, dry_run=False, everywhere=False):
    seeds, skipped = seed_hashes(seed_dir)
    report = Report(seeds=len(seeds), skipped_seeds=skipped, dry_run=dry_run)
    copies = find_copies(seeds, threshold, everywhere)
    report.copies = len(copies)
    by_seed = {}
    for image_id, (seed, distance) in sorted(copies.items()):
        by_seed.setdefault(seed.name, []).append(image_id)
        report.details.append((f"image #{image_id}", seed.name, distance))
    decided = set(Image.objects.filter(pk__in=copies, human_decision__isnull=False).values_list("pk", flat=True))
    report.human_kept = len(decided)
    report.rejected = len(copies) - len(decided)
    if not dry_run:
        for name, ids in by_seed.items():
            decisions.decide(AutoStage.SEED_COPY, [
                {"id": pk, "decision": Decision.REJECT, "reason": f"{SEED_COPY_PREFIX}{name}"} for pk in ids])
    if output_dir:
        if not Path(output_dir).is_dir():
            raise SeedDirError(f"output folder {output_dir} does not exist")
        for path, seed, distance in folder_copies(output_dir, seeds, threshold, seed_dir, everywhere):
            report.details.append((str(path), seed.name, distance))
            report.files_removed.append(str(path))
            if not dry_run:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
    return report
