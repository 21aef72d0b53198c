from django.core.management.base import BaseCommand, CommandError

from curation.storage_check import check


class Command(BaseCommand):
    help = ("List files in storage that no Image row names (a worker killed between writing an image and "
            "its row) and, with --fix, remove them; report rows whose file or thumbnail is missing.")

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="remove files without a row (rows are never touched)")
        parser.add_argument("--min-age", type=int, default=3600,
                            help="seconds a file without a row must be old to count (younger ones may be "
                                 "being ingested right now); default 3600")
        parser.add_argument("--strict", action="store_true",
                            help="exit with an error when anything is out of step (for monitoring)")

    def handle(self, *args, **opts):
        report = check(fix=opts["fix"], min_age=opts["min_age"])
        for name in report.orphans:
            self.stdout.write(f"{'removed' if name in report.removed else 'no row'}: {name}")
        for name in report.young:
            self.stdout.write(f"no row yet (younger than {opts['min_age']} s, left alone): {name}")
        for pk, names in report.missing:
            self.stdout.write(f"image #{pk} is missing {', '.join(names)}")
        orphan_count = len(report.orphans) + len(report.young)
        self.stdout.write(f"{orphan_count} file(s) without a row ({len(report.young)} younger than "
                          f"{opts['min_age']} s), removed {len(report.removed)}; "
                          f"{len(report.missing)} row(s) without their files")
        if opts["strict"] and not report.consistent:
            raise CommandError("storage and rows are inconsistent")
