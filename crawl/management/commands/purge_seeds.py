"""Remove uploaded seed images nobody needs any more."""
from datetime import timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from curation.models import Run

SEED_FOLDER = "seeds"


def seed_files():
    """Every stored seed upload: storage names under seeds/ (content-addressed, seeds/ab/<sha256>.ext)."""
    if not default_storage.exists(SEED_FOLDER):
        return []
    names = []
    folders, files = default_storage.listdir(SEED_FOLDER)
    names += [f"{SEED_FOLDER}/{f}" for f in files]
    for folder in folders:
        names += [f"{SEED_FOLDER}/{folder}/{f}" for f in default_storage.listdir(f"{SEED_FOLDER}/{folder}")[1]]
    return names


def purgeable(days):
    """Seed files whose every run ended more than `days` ago, and files of no run uploaded that long ago.

    A seed in use by a queued or running run, or by one that ended recently (someone may relaunch it),
    stays. The same upload is one file for every run that used it (content-addressed names).
    """
    cutoff = timezone.now() - timedelta(days=days)
    last_use = {}  # storage name -> latest end of a run using it; None while a run using it is active
    for status, finished_at, params in Run.objects.filter(kind=Run.Kind.SIMILAR).values_list(
            "status", "finished_at", "params").iterator():
        ended = None if status in Run.ACTIVE else (finished_at or timezone.now())
        for spec in (params or {}).get("seeds") or []:
            name = spec.get("storage") if isinstance(spec, dict) else None
            if not name:
                continue
            if ended is None or (name in last_use and last_use[name] is None):
                last_use[name] = None
            else:
                last_use[name] = max(last_use.get(name, ended), ended)
    doomed = []
    for name in seed_files():
        if name in last_use:
            if last_use[name] is not None and last_use[name] < cutoff:
                doomed.append(name)
            continue
        # Uploaded with a launch that then failed validation or returned an earlier run: no run names it.
        modified = default_storage.get_modified_time(name)
        if timezone.is_naive(modified):
            modified = modified.replace(tzinfo=dt_timezone.utc)
        if modified < cutoff:
            doomed.append(name)
    return doomed


class Command(BaseCommand):
    help = ("Remove uploaded seed images of reverse-image runs that ended more than SCENEIMG_SEED_RETENTION_DAYS "
            "ago, and uploads no run uses that are that old. scripts/run.sh runs it every hour.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="retention in days (default SCENEIMG_SEED_RETENTION_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    def handle(self, *args, **opts):
        days = settings.SCENEIMG_SEED_RETENTION_DAYS if opts["days"] is None else opts["days"]
        doomed = purgeable(days)
        for name in doomed:
            if opts["dry_run"]:
                self.stdout.write(f"would remove {name}")
            else:
                default_storage.delete(name)
        verb = "would remove" if opts["dry_run"] else "removed"
        self.stdout.write(f"{verb} {len(doomed)} seed file(s) older than {days} days")


