"""What every stage's management command shares: foreground with a progress bar, or --enqueue."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation import runs
from curation.models import Run
from curation.registry import LaunchError


class StageCommand(BaseCommand):
    summary_keys = ("stored", "duplicate", "invalid", "error")

    def add_enqueue_argument(self, parser):
        parser.add_argument("--enqueue", action="store_true",
                            help="run as a background RQ job instead of in this process")

    def run_stage(self, kind, stage, params, *, launch=None, label="", enqueue=False, dry_run=False, unit="img"):
        """Run `stage(tracker)` here, or with --enqueue the stage's launch function; print the summary
        line, fail loudly."""
        if enqueue and dry_run:
            raise CommandError("--dry-run and --enqueue cannot be combined: a dry run runs here and changes nothing")
        if enqueue:
            return self.enqueue(launch, params)
        bar = tqdm(unit=unit, desc=kind, disable=None, file=self.stderr._out, dynamic_ncols=True)
        try:
            if dry_run:
                tracker = runs.Tracker(progress=bar)
                stage(tracker)
                bar.close()
                self.stdout.write("dry run, nothing changed: would have " + tracker.summary(self.summary_keys))
                return None
            try:
                run = runs.run_in_foreground(kind, stage, params, label=label, progress=bar)
            except runs.Cancelled:
                raise CommandError(f"{kind} run was cancelled") from None
            except CommandError:
                raise
            except Exception as exc:
                raise CommandError(f"{kind} run failed: {exc}") from exc
        finally:
            bar.close()
        self.stdout.write(", ".join(f"{k} {run.counters.get(k, 0)}" for k in self.summary_keys))
        if run.status != Run.Status.DONE:
            raise CommandError(f"{kind} run #{run.pk} ended {run.status}: {run.error}")
        return run

    def enqueue(self, launch, params):
        try:
            run = launch(params)
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"enqueued {run.kind} run #{run.pk} in {run.jobs_total} job(s) ({run.status})")
        return run
