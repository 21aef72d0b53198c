from pathlib import Path

from django.core.management.base import CommandError

from curation import export, launch
from curation.models import Run
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Export the images matching a gallery filter as a zip (stored, not recompressed) or a folder: "
            "images under generated names, metadata.jsonl (Hugging Face imagefolder) and sceneimg.csv.")
    summary_keys = ("exported", "missing")

    def add_arguments(self, parser):
        parser.add_argument("--filter", default=export.DEFAULT_FILTER,
                            help="gallery querystring, e.g. 'final=keep&vlm_min=0.6' "
                                 f"(default '{export.DEFAULT_FILTER}'; '' exports every image)")
        parser.add_argument("--out", required=True, help="the zip file or folder to write")
        parser.add_argument("--format", choices=export.FORMATS, default=None,
                            help="zip or folder (default: zip when --out ends in .zip, else folder)")
        parser.add_argument("--label", default="", help="a name for this run")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        out = Path(opts["out"]).expanduser().resolve()
        fmt = opts["format"] or ("zip" if out.suffix.lower() == ".zip" else "folder")
        filter_string = opts["filter"].lstrip("?")
        try:
            export.check_output(out, fmt)
            export.matching(filter_string)
        except export.ExportError as exc:
            raise CommandError(str(exc)) from None
        label = opts["label"] or f"export to {out}"
        params = launch.export_params(filter_string, fmt, out=out, label=label)
        run = self.run_stage(Run.Kind.EXPORT, lambda t: export.export(t, filter_string, out, fmt), params,
                             launch=launch.launch_export, label=label, enqueue=opts["enqueue"])
        if run is not None and not opts["enqueue"]:
            self.stdout.write(f"wrote {out}")
