from pathlib import Path

from django.core.management.base import CommandError

from curation import export, launch, snapshots
from curation.models import Run, Snapshot
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Freeze the images matching a gallery filter as a snapshot and export it, or export an existing "
            "snapshot again (the same bytes every time): a Hugging Face imagefolder zip or folder, webdataset "
            "tar shards, or a parquet of the metadata; each with provenance.csv and manifest.json.")
    summary_keys = ("frozen", "exported", "missing")

    def add_arguments(self, parser):
        parser.add_argument("--filter", default=export.DEFAULT_FILTER,
                            help="gallery querystring, e.g. 'final=keep&vlm_min=0.6' "
                                 f"(default '{export.DEFAULT_FILTER}'; '' exports every image)")
        parser.add_argument("--snapshot", type=int, default=None,
                            help="export this snapshot again instead of freezing a new one (--filter is ignored)")
        parser.add_argument("--name", default="", help="a name for the new snapshot")
        parser.add_argument("--out", required=True, help="the zip file or folder to write")
        parser.add_argument("--format", choices=export.FORMATS, default=None,
                            help="zip, folder (imagefolder), webdataset or parquet "
                                 "(default: zip when --out ends in .zip, else folder)")
        parser.add_argument("--shard-size", type=int, default=export.DEFAULT_SHARD_SIZE,
                            help=f"images per tar shard for --format webdataset (default {export.DEFAULT_SHARD_SIZE})")
        parser.add_argument("--label", default="", help="a name for this run")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        out = Path(opts["out"]).expanduser().resolve()
        fmt = opts["format"] or ("zip" if out.suffix.lower() == ".zip" else "folder")
        filter_string = opts["filter"].lstrip("?")
        if opts["shard_size"] < 1:
            raise CommandError("--shard-size must be at least 1")
        snapshot = None
        try:
            export.check_output(out, fmt)
            if opts["snapshot"] is not None:
                snapshot = snapshots.get(opts["snapshot"])
            else:
                export.matching(filter_string)
        except export.ExportError as exc:
            raise CommandError(str(exc)) from None
        except Snapshot.DoesNotExist:
            raise CommandError(f"--snapshot {opts['snapshot']}: no such snapshot (or it never finished freezing)") \
                from None
        label = opts["label"] or f"export to {out}"
        params = launch.export_params(filter_string, fmt, out=out, label=label, name=opts["name"],
                                      shard_size=opts["shard_size"], snapshot=opts["snapshot"])
        if snapshot is not None:
            def stage(t):
                return export.export_snapshot(t, snapshot, out, fmt, shard_size=opts["shard_size"])
        else:
            def stage(t):
                return export.export(t, filter_string, out, fmt, name=opts["name"], shard_size=opts["shard_size"])
        run = self.run_stage(Run.Kind.EXPORT, stage, params, launch=launch.launch_export, label=label,
                             enqueue=opts["enqueue"])
        if run is not None and not opts["enqueue"]:
            made = snapshot or Snapshot.objects.filter(run=run, complete=True).first()
            self.stdout.write(f"wrote {out}" + (f" (snapshot #{made.pk})" if made else ""))
