import hashlib
import io
import json
import time
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from curation import launch, vector_index
from curation.clip import ModelConfigError, ModelWeightsMissing, check_clip_weights
from curation.detector import check_detector_weights
from curation.models import FilterScore, Image, Run
from curation.scoring import DecisionRule, InputError, key_for_settings, score_images, select_image_ids
from curation.stage_command import StageCommand

FILTERED_INDEX = "_filtered_index.jsonl"  # the original filter_basic.py's index of what it kept
LOG_NAME = "clip_filter_log.csv"


class Command(StageCommand):
    help = ("CLIP zero-shot pre-filter (the original filter_basic.py): indoor/outdoor/tidy/messy/moderate "
            "prompt scores, optional Faster R-CNN object counts, one FilterScore per image and scorer key, "
            "and the automatic keep/reject decision (a person's decision always wins).")
    summary_keys = ("kept", "rejected", "error")

    def add_arguments(self, parser):
        parser.add_argument("-i", "--input", default="all",
                            help="a folder of images (imported first, subfolders included, as the original "
                                 "read it), a run id, an import label, or 'all' (every image not yet scored "
                                 "under this model, weights and prompt set); default all")
        parser.add_argument("-o", "--output", metavar="DIR",
                            help="copy kept files into this folder, with clip_filter_log.csv and the original's "
                                 "_filtered_index.jsonl")
        parser.add_argument("--indoor-margin", type=float, default=0.02,
                            help="keep when indoor - outdoor >= this (default 0.02, the original's)")
        parser.add_argument("--moderate-margin", type=float, default=None,
                            help="also require moderate - max(tidy, messy) >= this (off unless given: the "
                                 "original had this check switched off)")
        parser.add_argument("-l", "--object-count-min", type=int, default=None,
                            help="require at least this many detected objects (runs Faster R-CNN on the images "
                                 "that passed CLIP)")
        parser.add_argument("-u", "--object-count-max", type=int, default=None,
                            help="require at most this many detected objects (runs Faster R-CNN)")
        parser.add_argument("--detector-threshold", type=float, default=0.5,
                            help="detections with a score at least this count as objects (default 0.5)")
        parser.add_argument("--limit", type=int, default=None,
                            help="stop once this many images are kept (the original's meaning); not with --enqueue")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="images per inference batch (default 256 on CUDA, 32 on the CPU)")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default SCENEIMG_DEVICE)")
        parser.add_argument("--log-csv", metavar="PATH",
                            help="append clip_filter_log.csv rows: file, each prompt's score, margins, "
                                 f"object count, decision (default with --output: DIR/{LOG_NAME})")
        parser.add_argument("--no-index", action="store_true",
                            help="do not update the vector index afterwards (an enqueued run always does)")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        rule = self.rule_from(opts)
        spec = self.check_weights(rule, opts["enqueue"])
        folder = Path(opts["input"]) if _is_folder(opts["input"]) else None
        key = key_for_settings(rule)
        names = {}
        input_spec = opts["input"]
        if folder is not None:
            input_spec, names = self.import_input_folder(folder)
        try:
            # A folder's images are scored even when scored before: the original rescored its input.
            ids = select_image_ids(input_spec, key)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        if not ids:
            self.stdout.write(f"nothing to score for --input {opts['input']} under {key}")
            return
        if spec is not None and spec.uncalibrated:
            self.stderr.write("note: SCENEIMG_CLIP_PRETRAINED=none: random weights, scores are UNCALIBRATED")
        self.stdout.write(f"scoring {len(ids)} images under {key}"
                          + (f", until {opts['limit']} are kept" if opts["limit"] else ""))
        log_csv = opts["log_csv"] or (str(Path(opts["output"]) / LOG_NAME) if opts["output"] else None)
        if log_csv:
            Path(log_csv).parent.mkdir(parents=True, exist_ok=True)
        params = launch.clip_params(input_spec, limit=opts["limit"], device=opts["device"],
                                    batch_size=opts["batch_size"], **rule.as_params())
        def stage(tracker):
            return score_until_kept(tracker, ids, opts["limit"], rule=rule, device=opts["device"],
                                    batch_size=opts["batch_size"], log_csv=log_csv)

        run = self.run_stage(Run.Kind.CLIP, stage, params, enqueue=opts["enqueue"],
                             launch=lambda p: launch.launch_clip(p, image_ids=ids))
        if run is not None and not opts["enqueue"] and not opts["no_index"]:
            index_run = vector_index.sync_after(run)
            self.stdout.write(f"vector index: {index_run.counters.get('indexed', 0)} added (run #{index_run.pk})")
        if opts["output"] and run is not None:
            copied = write_kept(Path(opts["output"]), key, ids, names)
            self.stdout.write(f"copied {copied} kept files to {opts['output']}")

    def rule_from(self, opts):
        lo, hi = opts["object_count_min"], opts["object_count_max"]
        if lo is not None and hi is not None and lo > hi:
            raise CommandError("--object-count-min cannot be greater than --object-count-max")
        if opts["enqueue"] and (opts["log_csv"] or opts["output"]):
            raise CommandError("--log-csv and --output write on this machine: use them without --enqueue")
        if opts["limit"] is not None:
            if opts["limit"] < 1:
                raise CommandError("--limit must be at least 1")
            if opts["enqueue"]:
                raise CommandError("--limit stops once that many images are kept, which needs the images scored "
                                   "in order here: use it without --enqueue")
        return DecisionRule(indoor_margin=opts["indoor_margin"], moderate_margin=opts["moderate_margin"],
                            object_count_min=lo, object_count_max=hi, detector_threshold=opts["detector_threshold"])

    def check_weights(self, rule, enqueue):
        """The CLIP spec when its weights are here; None when they are not but workers elsewhere may have them."""
        try:
            spec = check_clip_weights()
            if rule.needs_detector:
                check_detector_weights()
            return spec
        except ModelWeightsMissing as exc:
            if not enqueue:
                raise CommandError(str(exc)) from None
            # The workers may be other machines that do have the weights; they fail at once if not.
            self.stderr.write(f"warning: {exc}")
            return None
        except ModelConfigError as exc:
            raise CommandError(str(exc)) from None

    def import_input_folder(self, folder):
        """Bring a folder's images in through the one ingest path (the crawl app's import_folder); the
        import run's id is then the input. Also returns {image id: the file} for the copies."""
        out = io.StringIO()
        try:
            call_command("import_folder", str(folder), "--recursive", stdout=out, stderr=self.stderr)
        except LookupError:
            raise CommandError("--input as a folder needs the crawl app (its import_folder command)") from None
        self.stdout.write(f"imported {folder}: {out.getvalue().strip().splitlines()[-1]}")
        run = Run.objects.filter(kind=Run.Kind.IMPORT, params__path=str(folder.resolve())).latest("id")
        names = {}
        by_sha = {}
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"):
                by_sha.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
        for image_id, sha in Image.objects.filter(sha256__in=by_sha).values_list("id", "sha256"):
            names[image_id] = by_sha[sha]
        return str(run.pk), names


def _is_folder(value):
    value = str(value)
    return value.lower() != "all" and not value.lstrip("#").isdigit() and Path(value).is_dir()


def write_kept(output, key, ids, names):
    """Copy the kept images into `output` and append the original's _filtered_index.jsonl lines
    (sha1, source, target, timestamp) for the files copied now; a file already listed is skipped,
    as the original skipped a sha1 its index had."""
    output.mkdir(parents=True, exist_ok=True)
    index = output / FILTERED_INDEX
    listed = set()
    if index.is_file():
        for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("sha1"), str):
                listed.add(entry["sha1"])
    kept = (FilterScore.objects.filter(scorer_key=key, image_id__in=ids, passed=True)
            .select_related("image").order_by("image_id"))
    copied = 0
    with index.open("a", encoding="utf-8") as fh:
        for score in kept:
            image = score.image
            with default_storage.open(image.file.name, "rb") as src:
                data = src.read()
            sha1 = hashlib.sha1(data).hexdigest()
            if sha1 in listed:
                continue
            source = str(names.get(image.pk) or image.file.name)  # the input file, as the original logged
            name = Path(source).name
            target = output / name
            if target.exists():
                target = output / f"{image.pk}-{name}"
            target.write_bytes(data)
            listed.add(sha1)
            copied += 1
            fh.write(json.dumps({"sha1": sha1, "source": source, "target": target.name,
                                 "timestamp": time.time()}, ensure_ascii=False) + "\n")
    return copied


def score_until_kept(tracker, ids, limit, **scoring):
    """Score `ids`; with `limit`, in id order and never more at once than images still wanted, so the
    count of kept images stops exactly at `limit` (what the original's --limit counted)."""
    if not limit:
        return score_images(tracker, ids, **scoring)
    tracker.set_total(len(ids))
    done, result = 0, None
    while done < len(ids) and tracker.counts.get("kept", 0) < limit:
        chunk = ids[done:done + limit - tracker.counts.get("kept", 0)]
        done += len(chunk)
        result = score_images(tracker, chunk, set_total=False, **scoring)
    tracker.set_total(done)
    return result
