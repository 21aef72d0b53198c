"""Recompute every stored image's dHash with the current hash (crawl.ingest.compute_dhash)."""
from django.core.management.base import BaseCommand

from crawl import ingest
from curation.models import Image

BATCH = 500


class Command(BaseCommand):
    help = ("Recompute Image.dhash from the stored files. Needed once on a collection hashed before dHash "
            "followed the original scripts (full image, 9 x 8 Lanczos): old and new hashes cannot be compared. "
            "Run find_duplicates afterwards, and restart workers so that none keeps old hashes in memory.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count the hashes that would change")

    def handle(self, *args, **opts):
        changed, failed, seen = [], [], 0
        last = 0
        while True:
            batch = list(Image.objects.filter(pk__gt=last).order_by("pk").only("pk", "file", "dhash")[:BATCH])
            if not batch:
                break
            last = batch[-1].pk
            updates = []
            for image in batch:
                seen += 1
                try:
                    with image.file.storage.open(image.file.name, "rb") as fh:
                        value = ingest.compute_dhash(ingest.decode(fh.read()))
                except (OSError, ingest.InvalidImage) as exc:
                    failed.append(f"#{image.pk}: {exc}")
                    continue
                if value != image.dhash:
                    image.dhash = value
                    updates.append(image)
            changed += [i.pk for i in updates]
            if updates and not opts["dry_run"]:
                Image.objects.bulk_update(updates, ["dhash"])
        for problem in failed[:10]:
            self.stderr.write(f"could not hash {problem}")
        verb = "would change" if opts["dry_run"] else "changed"
        self.stdout.write(f"{seen} images, {verb} {len(changed)} hashes, {len(failed)} unreadable"
                          + ("; now run `manage.py find_duplicates`" if changed and not opts["dry_run"] else ""))
