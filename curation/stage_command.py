"""What every stage's management command shares: foreground with a progress bar, or --enqueue."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation import runs
from curation.models import Run


class StageCommand(BaseCommand):
    summary_keys = ("stored", "duplicate", "invalid", "error")

    def add_enqueue_argument(self, parser):
        parser.add_argument("--enqueue", action="store_true",
                            help="run as a background RQ job instead of in this process")

    def run_stage(self, kind, stage, params, *, job_func=None, queue=None, label="", enqueue=False,
                  dry_run=False, batches=None, unit="img"):
        """Run `stage(tracker)` here (or enqueue job_func), print the summary line, fail loudly."""
        if enqueue and dry_run:
            raise CommandError("--dry-run and --enqueue cannot be combined: a dry run runs here and changes nothing")
        if enqueue:
            run = runs.launch(kind, job_func, params, queue=queue, label=label, batches=batches)
            self.stdout.write(f"enqueued {kind} run #{run.pk} on queue '{queue}' ({run.status})")
            return run
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
