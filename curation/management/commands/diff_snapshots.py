import json

from django.core.management.base import BaseCommand, CommandError

from curation import snapshots
from curation.models import Snapshot
from curation.snapshot_diff import KINDS, diff


class Command(BaseCommand):
    help = ("What entered, left and changed decision from snapshot A to snapshot B, with counts by reason "
            "(human override, new VLM verdict, new duplicate, ...) and a gallery link for each.")

    def add_arguments(self, parser):
        parser.add_argument("a", type=int, help="the earlier snapshot's id")
        parser.add_argument("b", type=int, help="the later snapshot's id")
        parser.add_argument("--ids", action="store_true", help="also list the image ids of each group")
        parser.add_argument("--json", action="store_true", help="print the whole difference as JSON")
        parser.add_argument("--base-url", default="", help="prefix for the gallery links, e.g. https://sceneimg.example")

    def handle(self, *args, **opts):
        try:
            a, b = snapshots.get(opts["a"]), snapshots.get(opts["b"])
        except Snapshot.DoesNotExist:
            raise CommandError("no such snapshot (or it never finished freezing); "
                               "see /export/snapshots/ or the admin for the ids") from None
        result = diff(a, b)
        base = opts["base_url"].rstrip("/")
        if opts["json"]:
            self.stdout.write(json.dumps({
                "a": a.pk, "b": b.pk,
                **{kind: result.groups[kind] for kind in KINDS},
                "transitions": [{"from": f, "to": t, "count": n} for (f, t), n in sorted(result.transitions.items())],
            }, indent=1))
            return
        self.stdout.write(f"snapshot #{a.pk} ({a.image_count} images) -> snapshot #{b.pk} ({b.image_count} images)")
        for kind, total, reasons in result.summary():
            self.stdout.write(f"{'changed decision' if kind == 'changed' else kind} {total}")
            for reason, count, link in reasons:
                self.stdout.write(f"  {reason} {count}  {base}{link}")
                if opts["ids"]:
                    self.stdout.write("    " + " ".join(map(str, result.groups[kind][reason])))
        for (before, after), n in sorted(result.transitions.items()):
            self.stdout.write(f"  {before} -> {after}: {n}")
