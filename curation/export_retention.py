"""Expiring web exports: files of finished export runs older than SCENEIMG_EXPORT_RETENTION_DAYS are
deleted by `manage.py purge_exports` (run it periodically: docs/runs-and-export.md#limits-and-retention).

Only what the app wrote is touched: files under the export folder and `exports/` in media storage,
never a command line's --out. A file several runs share (an identical export reused) is as old as the
newest of them. The runs stay, with a notice saying their file was deleted.
"""
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Max
from django.utils import timezone

from curation import export_parts
from curation.export_outputs import STORAGE_PREFIX, export_root
from curation.models import Run

RUN_ID = re.compile(r"^export-(\d+)")


@dataclass
class Purged:
    deleted: list = field(default_factory=list)  # run results (paths or storage:names) removed
    leftovers: list = field(default_factory=list)  # files of failed or cancelled runs removed
    kept: int = 0  # finished exports still within the retention period


def _delete(result, dry_run):
    """Delete one export the app wrote; False for anything else (a --out path of the command line)."""
    if result.startswith(STORAGE_PREFIX):
        if not dry_run:
            default_storage.delete(result[len(STORAGE_PREFIX):])
        return True
    path = export_root() / result.rsplit("/", 1)[-1]
    if str(path) != result or not path.exists():
        return False
    if not dry_run:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return True


def purge(days=None, *, dry_run=False, now=None):
    """Delete exports finished more than `days` (default the setting) ago. 0 or less keeps everything."""
    days = settings.SCENEIMG_EXPORT_RETENTION_DAYS if days is None else days
    report = Purged()
    if days <= 0:
        return report
    cutoff = (now or timezone.now()) - timedelta(days=days)
    exports = Run.objects.filter(kind=Run.Kind.EXPORT)
    in_use = set(exports.filter(status__in=Run.ACTIVE).exclude(result="").values_list("result", flat=True))
    ages = exports.exclude(status__in=Run.ACTIVE).exclude(result="").values("result").annotate(
        last=Max("finished_at"))
    for row in ages.order_by("result"):
        if row["result"] in in_use or (row["last"] is not None and row["last"] >= cutoff):
            report.kept += 1
        elif _delete(row["result"], dry_run):
            report.deleted.append(row["result"])
    if report.deleted and not dry_run:
        exports.filter(result__in=report.deleted).update(result="", notice=(
            f"Its file was deleted {days:g} days after it was written (SCENEIMG_EXPORT_RETENTION_DAYS)."))
    report.leftovers = _leftovers(cutoff, dry_run) + _stray_parts(dry_run)
    return report


def _stray_parts(dry_run):
    """Part files of large exports that ended without putting them together (curation/export_parts.py)."""
    removed = []
    for run_id, names in export_parts.strays().items():
        if not dry_run:
            export_parts.remove(run_id, names)
        removed += [STORAGE_PREFIX + name for name in names]
    return removed


def _leftovers(cutoff, dry_run):
    """Files in the export folder that no finished run names (a failed or cancelled run's half-written
    folder), older than the cutoff and not of a run still going."""
    root = export_root()
    if not root.is_dir():
        return []
    named = set(Run.objects.filter(kind=Run.Kind.EXPORT).exclude(result="").values_list("result", flat=True))
    active = set(Run.objects.filter(kind=Run.Kind.EXPORT, status__in=Run.ACTIVE).values_list("pk", flat=True))
    removed = []
    for entry in sorted(root.iterdir()):
        match = RUN_ID.match(entry.name)
        if str(entry) in named or (match and int(match.group(1)) in active):
            continue
        if datetime.fromtimestamp(entry.stat().st_mtime, tz=dt_timezone.utc) >= cutoff:
            continue
        if not dry_run:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        removed.append(str(entry))
    return removed
