from django.conf import settings
from django.core.management.base import BaseCommand

from curation.export_retention import purge


class Command(BaseCommand):
    help = ("Delete the files of web exports finished more than SCENEIMG_EXPORT_RETENTION_DAYS ago (in the "
            "export folder and in media storage), and old leftovers of failed exports. Run it periodically "
            "(cron or a systemd timer, see docs/runs-and-export.md).")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=None,
                            help=f"retention in days instead of the setting ({settings.SCENEIMG_EXPORT_RETENTION_DAYS:g}); "
                                 "0 deletes nothing")
        parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    def handle(self, *args, **opts):
        report = purge(opts["days"], dry_run=opts["dry_run"])
        verb = "would delete" if opts["dry_run"] else "deleted"
        for name in report.deleted + report.leftovers:
            self.stdout.write(f"{verb}: {name}")
        self.stdout.write(f"{verb} {len(report.deleted)} export(s) and {len(report.leftovers)} leftover(s); "
                          f"kept {report.kept} within the retention period")
