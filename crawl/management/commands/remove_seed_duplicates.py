from django.core.management.base import BaseCommand, CommandError

from crawl import seeds


class Command(BaseCommand):
    help = ("Reject images within the dHash threshold of a seed (reason 'copy of seed X'; files are kept) "
            "and, with --output-dir, delete those copies and their sidecar JSON from an exported folder. "
            "As the original, each seed is compared with its own expansion (and its own subfolder of "
            "--output-dir); --everywhere compares with everything.")

    def add_arguments(self, parser):
        parser.add_argument("--seed-dir", required=True, help="folder of seed images")
        parser.add_argument("--output-dir", help="an exported folder (e.g. search_by_images --output) to clean")
        parser.add_argument("--threshold", type=int, default=2, help="dHash distance counted as a copy (default 2)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        parser.add_argument("--everywhere", action="store_true",
                            help="compare each seed with every image (and every file under --output-dir), not "
                                 "only with what its own expansion found")

    def handle(self, *args, **opts):
        if opts["threshold"] < 0:
            raise CommandError("--threshold must be 0 or more")
        try:
            report = seeds.remove_seed_duplicates(opts["seed_dir"], threshold=opts["threshold"],
                                                  output_dir=opts["output_dir"], dry_run=opts["dry_run"],
                                                  everywhere=opts["everywhere"])
        except seeds.SeedDirError as exc:
            raise CommandError(str(exc)) from None
        for problem in report.skipped_seeds:
            self.stderr.write(f"skipped seed {problem}")
        verbose = opts["verbosity"] > 1 or opts["dry_run"]
        for what, seed, distance in report.details if verbose else ():
            self.stdout.write(f"  {what}: copy of seed {seed} (dHash distance {distance})")
        prefix = "dry run, nothing changed: would have " if report.dry_run else ""
        line = (f"{prefix}rejected {report.rejected} of "
                f"{report.copies} images within dHash {opts['threshold']} of {report.seeds} seeds "
                f"({report.human_kept} left to their human decision)")
        if opts["output_dir"]:
            line += f"; removed {len(report.files_removed)} files (with their sidecars) from {opts['output_dir']}"
        self.stdout.write(line)
